-- wrk script for bench/gateway.sh: POSTs a chat request (the body file)
-- with a gateway key from the keys file, one key per line.
--   wrk -s chat.lua URL -- BODY_FILE KEYS_FILE [random|seq OFFSET] [sse]
-- random (default): a random key per request (one key: always that one);
-- seq: the keys in order from OFFSET (the warm-up that fills the cache),
-- and done() prints "completed N" so the caller can move OFFSET on.
-- sse: asks the bench mock for its streamed (text/event-stream) answer.

local path = "/trueportai-services/openai/v1/chat/completions"
local keys, body, mode, idx, fixed = {}, nil, "random", 1, nil
local sse = nil

local function headers(k)
    return {
        ["Host"] = wrk.host,
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. k,
        ["X-Bench-SSE"] = sse,
    }
end

function init(args)
    local f = assert(io.open(args[1], "rb"))
    body = f:read("*a")
    f:close()
    for line in io.lines(args[2]) do
        if #line > 0 then keys[#keys + 1] = line end
    end
    mode = args[3] or "random"
    idx = tonumber(args[4] or "0") % #keys + 1
    if args[5] == "sse" then sse = "1" end
    math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
    if #keys == 1 then
        fixed = wrk.format("POST", path, headers(keys[1]), body)
    end
end

function request()
    if fixed then return fixed end
    local k
    if mode == "seq" then
        k = keys[idx]
        idx = idx % #keys + 1
    else
        k = keys[math.random(#keys)]
    end
    return wrk.format("POST", path, headers(k), body)
end

function done(summary, latency, requests)
    io.write(string.format("completed %d\n", summary.requests))
end
