# Malformed requests to the sidecar get the error envelope, never a 500:
# unknown routes, wrong methods, bad JSON, oversize bodies, request ids.
use lib 't/lib';
use Test::TruePort;

use_sidecar();
run_tests();

__DATA__

=== TEST 1: unknown route: 404 envelope
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/no/such/route
--- error_code: 404
--- response_headers
Content-Type: application/json
--- response_body_like: ^\{"error":\{"code":"not_found","message":"no route for GET /platform/api/no/such/route","request_id":"[\w-]+"\}\}$
--- no_error_log
[error]



=== TEST 2: known path, wrong method: 405 with Allow
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
DELETE /health
--- error_code: 405
--- response_headers
Allow: GET
--- response_body_like: "code":"method_not_allowed"



=== TEST 3: malformed JSON: 400 envelope
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/register
{"email": "a@b.c", "password":
--- more_headers
Content-Type: application/json
--- error_code: 400
--- response_body_like: ^\{"error":\{"code":"invalid_json","message":"malformed JSON[^"]*","request_id":"[\w-]+"\}\}$



=== TEST 4: JSON that is not an object: 400
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/register
[1, 2, 3]
--- error_code: 400
--- response_body_like: "code":"invalid_json"



=== TEST 5: nesting bomb: 400, not a crash
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/global/auth/register\n" . ("[" x 5000) . ("]" x 5000)
--- error_code: 400
--- response_body_like: nested deeper



=== TEST 6: empty body: 400
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
POST /platform/api/global/auth/register
--- error_code: 400
--- response_body_like: "code":"invalid_json"



=== TEST 7: body over the sidecar's limit: 413 envelope from the sidecar
--- config
    location /platform/api/ {
        client_max_body_size 8m;
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /platform/api/global/auth/register\n" . ('{"email":"' . ("x" x (1100 * 1024)) . '"}')
--- error_code: 413
--- response_body_like: ^\{"error":\{"code":"payload_too_large"



=== TEST 8: the sidecar is still healthy after all of that
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- error_code: 200
--- response_body_like: "status":"ok"



=== TEST 9: nginx's request id reaches the sidecar and comes back
--- config
    location /platform/api/ {
        proxy_set_header X-Request-Id "abc-123-def";
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/nothing
--- error_code: 404
--- response_headers
X-Request-Id: abc-123-def
--- response_body_like: "request_id":"abc-123-def"



=== TEST 10: a hostile request id is replaced, not echoed
--- config
    location /platform/api/ {
        proxy_set_header X-Request-Id "<script>";
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /platform/api/nothing
--- error_code: 404
--- response_body_like: "request_id":"[0-9a-f]{8}-[0-9a-f]{4}-
