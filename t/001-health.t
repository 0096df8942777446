# Health endpoints: the sidecar's /health through nginx (200, then 503 while
# Postgres is down, 200 again after it returns without a sidecar restart),
# and the module's own /trueportai-services/health.
use lib 't/lib';
use Test::TruePort;

use_sidecar();
run_tests();

__DATA__

=== TEST 1: sidecar health through nginx
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body_like: ^\{"status":"ok","database":"ok","schema_version":[1-9]\d*\}$
--- no_error_log
[error]



=== TEST 2: the schema version is the newest migration
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- response_body_like eval
my ($v) = sort { $b <=> $a } map { m{/(\d{4})_[^/]+\.sql$} ? $1 + 0 : () }
          glob("$ENV{TP_ROOT}/migrations/*.sql");
qr/"schema_version":$v\}/



=== TEST 3: Postgres down: 503 with the same shape, quickly
--- init
pg_stop();
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- timeout: 5
--- error_code: 503
--- response_body_like: ^\{"status":"\w+","database":"unavailable","schema_version":null\}$



=== TEST 4: Postgres back: 200 again without restarting the sidecar
--- init
pg_start();
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- error_code: 200
--- response_body_like: "database":"ok"



=== TEST 5: module health with a zone
--- http_config
    trueport_zone zone=tp_health:1m;
--- config
    location = /trueportai-services/health {
        trueport_health;
    }
--- request
GET /trueportai-services/health
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body_like: ^\{"status":"ok","module":"ngx_http_trueport_module","version":"\d+\.\d+\.\d+","zone":\{"name":"tp_health","size":1048576,"used":\d+,.*"sidecar":\{"last_ok":(null|true|false)
--- no_error_log
[error]



=== TEST 6: module health without a zone says so
--- config
    location = /trueportai-services/health {
        trueport_health;
    }
--- request
GET /trueportai-services/health
--- error_code: 200
--- response_body_like: "zone":null



=== TEST 7: module health refuses POST with a JSON 405
--- config
    location = /trueportai-services/health {
        trueport_health;
    }
--- request
POST /trueportai-services/health
{}
--- error_code: 405
--- response_headers_like
Allow: GET
--- response_body_like: "error"



=== TEST 8: HEAD on the module health has no body
--- config
    location = /trueportai-services/health {
        trueport_health;
    }
--- request
HEAD /trueportai-services/health
--- error_code: 200
--- response_body:



=== TEST 9: module health for a client from elsewhere: the status alone
The realip module makes the request's address the one in X-Real-IP, as it
would behind a proxy: not loopback, so no version, zone or sidecar state.
--- http_config
    trueport_zone zone=tp_health:1m;
--- config
    location = /trueportai-services/health {
        set_real_ip_from 127.0.0.0/8;
        real_ip_header X-Real-IP;
        trueport_health;
    }
--- request
GET /trueportai-services/health
--- more_headers
X-Real-IP: 203.0.113.7
--- error_code: 200
--- response_body
{"status":"ok"}



=== TEST 10: module health from a loopback address other than 127.0.0.1
--- http_config
    trueport_zone zone=tp_health:1m;
--- config
    location = /trueportai-services/health {
        set_real_ip_from 127.0.0.0/8;
        real_ip_header X-Real-IP;
        trueport_health;
    }
--- request
GET /trueportai-services/health
--- more_headers
X-Real-IP: 127.4.5.6
--- error_code: 200
--- response_body_like: "version":"\d+\.\d+\.\d+","zone":\{"name":"tp_health"
