#!/usr/bin/env node
// A mock of the four upstream providers, faithful to their wire formats:
// OpenAI, Anthropic, Google Gemini and Azure OpenAI (built-in modules only).
//
//   node t/mock/provider.js --port N      (0: any free port)
//   prints "listening N" on stdout when ready
//
// Routes
//   POST /v1/chat/completions  /v1/embeddings   GET /v1/models       OpenAI
//   POST /v1/messages                                                Anthropic
//   POST /v1beta/models/{m}:generateContent  :streamGenerateContent  Gemini
//   GET  /v1beta/models
//   POST /openai/deployments/{d}/chat/completions?api-version=...    Azure
//   POST /openai/deployments/{d}/embeddings?api-version=...
//   GET /__mock/requests    every request received, as JSON (oldest first),
//                           with its body_length and the x-request-id /
//                           request-id it was answered with
//   DELETE /__mock/requests clears them
//
// Request headers that steer the mock (comma-separated, combinable):
//   x-mock-behavior: status-500 | status-429 | slow-<ms> | drop-mid-stream | gzip
//   x-mock-usage:    prompt=N,completion=N,cached=N,reasoning=N,cache_creation=N
//   x-mock-reply:    the assistant's text (default below)
//
// Usage numbers without x-mock-usage: prompt = 10 + number of words in the
// input, completion = number of words in the reply, cached = reasoning = 0.
// "prompt" always counts every input token; for Anthropic, whose
// input_tokens excludes cache reads and writes, input_tokens is
// prompt - cached - cache_creation.
'use strict';

const http = require('http');
const zlib = require('zlib');
const crypto = require('crypto');

const DEFAULT_REPLY = 'Hello from the mock provider, how can I help?';
const MAX_RECORDS = 2000;
const MAX_RECORD_BODY = 4 * 1024 * 1024;
const records = [];

const rid = (p) => p + crypto.randomBytes(12).toString('hex');
const now = () => Math.floor(Date.now() / 1000);
const words = (s) => (s.match(/\S+/g) || []).length;

// All the text of a request body, whatever the provider's shape.
function inputText(v) {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map(inputText).join(' ');
  if (v && typeof v === 'object') {
    return ['content', 'text', 'parts', 'messages', 'system', 'input', 'contents']
      .filter((k) => k in v).map((k) => inputText(v[k])).join(' ');
  }
  return '';
}

function usageFor(req, body, reply) {
  const u = { prompt: 10 + words(inputText(body)), completion: words(reply),
              cached: 0, reasoning: 0, cache_creation: 0 };
  for (const kv of (req.headers['x-mock-usage'] || '').split(',')) {
    const m = kv.trim().match(/^(\w+)=(\d+)$/);
    if (m && m[1] in u) u[m[1]] = Number(m[2]);
  }
  return u;
}

// -- provider-specific shapes -------------------------------------------

const openaiUsage = (u) => ({
  prompt_tokens: u.prompt, completion_tokens: u.completion,
  total_tokens: u.prompt + u.completion,
  prompt_tokens_details: { cached_tokens: u.cached, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: u.reasoning, audio_tokens: 0,
    accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
});

const errors = {
  openai: (status, msg, type, code) =>
    ({ error: { message: msg, type, param: null, code: code || null } }),
  anthropic: (status, msg, type) => ({ type: 'error', error: { type, message: msg } }),
  google: (status, msg, type) => ({ error: { code: status, message: msg, status: type } }),
  azure: (status, msg) => ({ error: { code: String(status), message: msg } }),
};

const failures = {
  401: { openai: ["You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", 'invalid_request_error'],
         anthropic: ['x-api-key header is required', 'authentication_error'],
         google: ["Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.", 'PERMISSION_DENIED'],
         azure: ['Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.'] },
  429: { openai: ['Rate limit reached for requests. Please try again in 1s.', 'requests', 'rate_limit_exceeded'],
         anthropic: ['This request would exceed your rate limit.', 'rate_limit_error'],
         google: ['Resource has been exhausted (e.g. check quota).', 'RESOURCE_EXHAUSTED'],
         azure: ['Requests to the ChatCompletions_Create Operation have exceeded the call rate limit. Please retry after 1 second.'] },
  500: { openai: ['The server had an error while processing your request. Sorry about that!', 'server_error'],
         anthropic: ['Internal server error', 'api_error'],
         google: ['An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting', 'INTERNAL'],
         azure: ['The server had an error while processing your request.'] },
};

function fail(ctx, status, msg, type, code) {
  if (!msg) [msg, type, code] = failures[status][ctx.provider];
  // Gemini answers a missing key with 403, as Google does
  const s = ctx.provider === 'google' && status === 401 ? 403 : status;
  const headers = {};
  if (status === 429) {
    headers['retry-after'] = '1';
    if (ctx.provider === 'openai' || ctx.provider === 'azure') {
      headers['x-ratelimit-remaining-requests'] = '0';
      headers['x-ratelimit-reset-requests'] = '1s';
    }
  }
  send(ctx, s, errors[ctx.provider](s, msg, type, code), headers);
}

// -- sending ------------------------------------------------------------

function baseHeaders(ctx, type) {
  const h = { 'content-type': type };
  if (ctx.provider === 'openai') Object.assign(h, { 'x-request-id': rid('req_'), 'openai-processing-ms': '7' });
  if (ctx.provider === 'anthropic') h['request-id'] = rid('req_');
  if (ctx.provider === 'azure') Object.assign(h, { 'apim-request-id': crypto.randomUUID(), 'x-request-id': crypto.randomUUID() });
  if (ctx.behavior.gzip) h['content-encoding'] = 'gzip';
  // the record keeps the id the client must see, untouched by the gateway
  ctx.record.response_request_id = h['x-request-id'] || h['request-id'];
  return h;
}

function send(ctx, status, obj, extra) {
  let body = Buffer.from(JSON.stringify(obj));
  if (ctx.behavior.gzip) body = zlib.gzipSync(body);
  const h = Object.assign(baseHeaders(ctx, 'application/json'), extra || {},
                          { 'content-length': body.length });
  ctx.res.writeHead(status, h);
  if (ctx.behavior.drop && status === 200) {
    ctx.res.write(body.subarray(0, body.length >> 1));
    setTimeout(() => ctx.res.socket && ctx.res.socket.destroy(), 50);
    return;
  }
  ctx.res.end(body);
}

// Writes SSE events (strings, already framed) one by one, a few ms apart.
function stream(ctx, events, type) {
  const res = ctx.res;
  res.writeHead(200, Object.assign(baseHeaders(ctx, type || 'text/event-stream; charset=utf-8'),
                                   { 'cache-control': 'no-cache' }));
  let out = res;
  if (ctx.behavior.gzip) {
    out = zlib.createGzip();
    out.pipe(res);
  }
  const stopAt = ctx.behavior.drop ? Math.max(1, events.length >> 1) : events.length;
  let i = 0;
  const next = () => {
    if (i === stopAt) {
      if (ctx.behavior.drop) return setTimeout(() => res.socket && res.socket.destroy(), 50);
      return out.end();
    }
    out.write(events[i++]);
    if (out.flush) out.flush(zlib.constants.Z_SYNC_FLUSH);
    setTimeout(next, 5);
  };
  next();
}

const sse = (obj, event, sep) =>
  (event ? `event: ${event}\n` : '') + `data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}` + (sep || '\n\n');

const chunksOf = (text) => text.match(/\S+\s*/g) || [''];

// -- OpenAI and Azure -----------------------------------------------------

function chat(ctx, body) {
  const azure = ctx.provider === 'azure';
  const model = body.model || ctx.deployment || 'gpt-4o-mini';
  const reply = ctx.reply;
  const u = usageFor(ctx.req, body, reply);
  const id = rid('chatcmpl-');
  const created = now();
  const fp = 'fp_' + crypto.createHash('md5').update(model).digest('hex').slice(0, 10);
  const filter = { hate: { filtered: false, severity: 'safe' }, self_harm: { filtered: false, severity: 'safe' },
                   sexual: { filtered: false, severity: 'safe' }, violence: { filtered: false, severity: 'safe' } };
  const choice = (extra) => Object.assign({ index: 0, logprobs: null }, extra,
                                          azure ? { content_filter_results: filter } : {});

  if (!body.stream) {
    const out = { id, object: 'chat.completion', created, model,
      choices: [choice({ message: { role: 'assistant', content: reply, refusal: null, annotations: [] },
                         finish_reason: 'stop' })],
      usage: openaiUsage(u), service_tier: 'default', system_fingerprint: fp };
    if (azure) out.prompt_filter_results = [{ prompt_index: 0, content_filter_results: filter }];
    return send(ctx, 200, out);
  }

  const withUsage = !!(body.stream_options && body.stream_options.include_usage);
  const chunk = (choices, extra) => Object.assign({ id, object: 'chat.completion.chunk', created, model,
    service_tier: 'default', system_fingerprint: fp, choices }, withUsage ? { usage: null } : {}, extra || {});
  const ev = [];
  if (azure) {
    ev.push(sse({ choices: [], created: 0, id: '', model: '', object: '',
                  prompt_filter_results: [{ prompt_index: 0, content_filter_results: filter }] }));
  }
  ev.push(sse(chunk([choice({ delta: { role: 'assistant', content: '', refusal: null }, finish_reason: null })])));
  for (const piece of chunksOf(reply)) {
    ev.push(sse(chunk([choice({ delta: { content: piece }, finish_reason: null })])));
  }
  ev.push(sse(chunk([choice({ delta: {}, finish_reason: 'stop' })])));
  if (withUsage) ev.push(sse(chunk([], { usage: openaiUsage(u) })));
  ev.push(sse('[DONE]'));
  stream(ctx, ev);
}

function embeddings(ctx, body) {
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  if (body.input === undefined || inputs.length === 0) {
    return fail(ctx, 400, "'input' is a required property", 'invalid_request_error');
  }
  const dims = Number.isInteger(body.dimensions) && body.dimensions > 0 ? Math.min(body.dimensions, 3072) : 8;
  const data = inputs.map((input, index) => {
    const seed = crypto.createHash('sha256').update(JSON.stringify(input)).digest();
    const v = Array.from({ length: dims }, (_, i) => (seed[i % 32] - 128) / 128);
    let embedding = v;
    if (body.encoding_format === 'base64') {       // what the openai SDK asks for
      const f = new Float32Array(v);
      embedding = Buffer.from(f.buffer).toString('base64');
    }
    return { object: 'embedding', index, embedding };
  });
  const prompt = usageFor(ctx.req, body, '').prompt;
  send(ctx, 200, { object: 'list', data, model: body.model || ctx.deployment || 'text-embedding-3-small',
                   usage: { prompt_tokens: prompt, total_tokens: prompt } });
}

function models(ctx) {
  const ids = ['gpt-4o', 'gpt-4o-mini', 'o3-mini', 'text-embedding-3-small'];
  send(ctx, 200, { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 1715367049, owned_by: 'system' })) });
}

// -- Anthropic ----------------------------------------------------------

function messages(ctx, body) {
  if (!Array.isArray(body.messages)) return fail(ctx, 400, 'messages: Field required', 'invalid_request_error');
  if (!Number.isInteger(body.max_tokens)) return fail(ctx, 400, 'max_tokens: Field required', 'invalid_request_error');
  const model = body.model || 'claude-3-5-haiku-latest';
  const reply = ctx.reply;
  const u = usageFor(ctx.req, body, reply);
  const usage = { input_tokens: Math.max(0, u.prompt - u.cached - u.cache_creation),
                  cache_creation_input_tokens: u.cache_creation, cache_read_input_tokens: u.cached };
  const msg = { id: rid('msg_'), type: 'message', role: 'assistant', model, content: [],
                stop_reason: null, stop_sequence: null };

  if (!body.stream) {
    return send(ctx, 200, Object.assign(msg, { content: [{ type: 'text', text: reply }], stop_reason: 'end_turn',
                                               usage: Object.assign(usage, { output_tokens: u.completion }) }));
  }
  const ev = [sse({ type: 'message_start', message: Object.assign(msg, { usage: Object.assign(usage, { output_tokens: 1 }) }) }, 'message_start'),
              sse({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, 'content_block_start'),
              sse({ type: 'ping' }, 'ping')];
  for (const piece of chunksOf(reply)) {
    ev.push(sse({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } }, 'content_block_delta'));
  }
  ev.push(sse({ type: 'content_block_stop', index: 0 }, 'content_block_stop'),
          sse({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null },
                usage: { output_tokens: u.completion } }, 'message_delta'),
          sse({ type: 'message_stop' }, 'message_stop'));
  stream(ctx, ev);
}

// -- Gemini -------------------------------------------------------------

function gemini(ctx, body, model, streaming) {
  if (!Array.isArray(body.contents)) {
    return fail(ctx, 400, '* GenerateContentRequest.contents: contents is not specified', 'INVALID_ARGUMENT');
  }
  const reply = ctx.reply;
  const u = usageFor(ctx.req, body, reply);
  const responseId = crypto.randomBytes(12).toString('base64url');
  const meta = (out, done) => {
    const m = { promptTokenCount: u.prompt, candidatesTokenCount: out, totalTokenCount: u.prompt + out + (done ? u.reasoning : 0),
                promptTokensDetails: [{ modality: 'TEXT', tokenCount: u.prompt }] };
    if (u.cached) m.cachedContentTokenCount = u.cached;
    if (done && u.reasoning) m.thoughtsTokenCount = u.reasoning;
    return m;
  };
  const cand = (text, done) => Object.assign({ content: { parts: [{ text }], role: 'model' } },
                                             done ? { finishReason: 'STOP' } : {}, { index: 0 });

  if (!streaming) {
    return send(ctx, 200, { candidates: [cand(reply, true)], usageMetadata: meta(u.completion, true),
                            modelVersion: model, responseId });
  }
  // each chunk carries the running total; the last one is final
  const pieces = chunksOf(reply);
  const objs = pieces.map((p, i) => {
    const last = i === pieces.length - 1;
    const out = last ? u.completion : Math.round(u.completion * (i + 1) / pieces.length);
    return { candidates: [cand(p, last)], usageMetadata: meta(out, last), modelVersion: model, responseId };
  });
  if (ctx.url.searchParams.get('alt') === 'sse') {
    return stream(ctx, objs.map((o) => sse(o, null, '\r\n\r\n')));
  }
  // without alt=sse Google streams one JSON array
  stream(ctx, objs.map((o, i) => (i ? ',\r\n' : '[') + JSON.stringify(o) + (i === objs.length - 1 ? ']' : '')),
         'application/json; charset=UTF-8');
}

// -- routing ------------------------------------------------------------

function route(ctx, body) {
  const p = ctx.url.pathname;
  const m = ctx.req.method;
  let g;
  if (ctx.provider === 'openai') {
    if (m === 'POST' && p === '/v1/chat/completions') return chat(ctx, body);
    if (m === 'POST' && p === '/v1/embeddings') return embeddings(ctx, body);
    if (m === 'GET' && p === '/v1/models') return models(ctx);
    return fail(ctx, 404, `Invalid URL (${m} ${p})`, 'invalid_request_error');
  }
  if (ctx.provider === 'anthropic') {
    if (!ctx.req.headers['anthropic-version']) {
      return fail(ctx, 400, 'anthropic-version: header is required', 'invalid_request_error');
    }
    if (m === 'POST' && p === '/v1/messages') return messages(ctx, body);
    return fail(ctx, 404, 'Not Found', 'not_found_error');
  }
  if (ctx.provider === 'google') {
    if (m === 'GET' && p === '/v1beta/models') {
      return send(ctx, 200, { models: ['gemini-2.0-flash', 'gemini-2.5-pro'].map((n) => (
        { name: `models/${n}`, displayName: n, supportedGenerationMethods: ['generateContent', 'countTokens'] })) });
    }
    if (m === 'POST' && (g = p.match(/^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/))) {
      return gemini(ctx, body, decodeURIComponent(g[1]), g[2] === 'streamGenerateContent');
    }
    return fail(ctx, 404, `Method not found: ${p}`, 'NOT_FOUND');
  }
  // azure
  g = p.match(/^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/);
  if (!g || m !== 'POST' || !ctx.url.searchParams.get('api-version')) return fail(ctx, 404, 'Resource not found');
  ctx.deployment = decodeURIComponent(g[1]);
  return g[2] === 'embeddings' ? embeddings(ctx, body) : chat(ctx, body);
}

function providerOf(path) {
  if (path.startsWith('/openai/')) return 'azure';
  if (path.startsWith('/v1beta/')) return 'google';
  if (path.startsWith('/v1/messages')) return 'anthropic';
  return 'openai';
}

function authorized(ctx) {
  const h = ctx.req.headers;
  const bearer = /^Bearer \S+/i.test(h.authorization || '');
  switch (ctx.provider) {
    case 'openai': return bearer;
    case 'anthropic': return !!h['x-api-key'] || bearer;
    case 'google': return !!h['x-goog-api-key'] || !!ctx.url.searchParams.get('key');
    default: return !!h['api-key'] || bearer;
  }
}

function handle(req, res, raw) {
  const url = new URL(req.url, 'http://mock');
  if (url.pathname === '/__mock/requests') {
    if (req.method === 'DELETE') records.length = 0;
    res.writeHead(req.method === 'DELETE' ? 204 : 200, { 'content-type': 'application/json' });
    return res.end(req.method === 'DELETE' ? undefined : JSON.stringify(records));
  }

  const text = raw.toString('utf8');
  // bodies over 4 MB are kept as their length only (the harness's JSON
  // decoder is slow on them)
  const record = { method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams),
                   headers: req.headers, body: raw.length > MAX_RECORD_BODY ? null : text,
                   body_length: raw.length, ts: Date.now() };
  records.push(record);
  if (records.length > MAX_RECORDS) records.shift();

  const behavior = { gzip: false, drop: false, status: 0, slow: 0 };
  for (const b of (req.headers['x-mock-behavior'] || '').split(',').map((s) => s.trim())) {
    let mm;
    if (b === 'gzip') behavior.gzip = true;
    else if (b === 'drop-mid-stream') behavior.drop = true;
    else if ((mm = b.match(/^status-(429|500)$/))) behavior.status = Number(mm[1]);
    else if ((mm = b.match(/^slow-(\d+)$/))) behavior.slow = Number(mm[1]);
  }
  const ctx = { req, res, url, behavior, record, provider: providerOf(url.pathname),
                reply: req.headers['x-mock-reply'] || DEFAULT_REPLY };

  setTimeout(() => {
    if (!authorized(ctx)) return fail(ctx, 401);
    if (behavior.status) return fail(ctx, behavior.status);
    let body = {};
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch (e) {
        return fail(ctx, 400, `We could not parse the JSON body of your request. (${e.message})`,
                    ctx.provider === 'google' ? 'INVALID_ARGUMENT' : 'invalid_request_error');
      }
    }
    if (body === null || typeof body !== 'object') body = {};
    route(ctx, body);
  }, behavior.slow);
}

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;

const server = http.createServer((req, res) => {
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => handle(req, res, Buffer.concat(parts)));
});
server.keepAliveTimeout = 30000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
