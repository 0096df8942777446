# Hostile JSON bodies (issue 12, finding 1). The sidecar's parser refuses
# comments, counts depth itself (32 levels), bounds the values (100,000),
# builds no recursion the input can deepen and frees iteratively; every
# case answers 4xx and the sidecar lives on.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Org;
use MIME::Base64 ();
use POSIX ();

use_sidecar();

our $LOGIN = '/platform/api/global/auth/login';
our $KEYS = '/trueportai-services/api/v1/keys';

# a login body whose "password" is n - 1 nested arrays: n levels in all
sub nested {
    my $n = shift;
    return '{"email":"deep@example.com","password":'
           . ('[' x ($n - 1)) . (']' x ($n - 1)) . '}';
}

sub login_with { "POST $LOGIN\n" . shift }

# the sidecar answers /health and its process has not exited
sub sidecar_lives {
    my $what = shift;
    my $h = sidecar_api(GET => '/health');
    is($h->{status}, 200, "$what: the sidecar answers /health");
    is(waitpid(sidecar_pid(), POSIX::WNOHANG()), 0,
       "$what: the sidecar's process still runs");
}

# a JWT whose header and payload are the given texts (the signature is
# junk: the JSON is read before it is checked)
sub token_of {
    my ($head, $body) = @_;
    my $b64 = sub { MIME::Base64::encode_base64(shift, '') =~ tr{+/}{-_}r
                    =~ s/=+$//r };
    return $b64->($head) . '.' . $b64->($body) . '.c2ln';
}

our $tenant = org_tenant();
our ($admin) = org_member($tenant, 'admin');
our $AUTH = "Authorization: Bearer $admin\nContent-Type: application/json";

run_tests();

__DATA__

=== TEST 1: finding 1: a comment holding a quote, then 524,000 levels (1 MB): 400, the sidecar lives
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
login_with('/*"*/' . ('[' x 524000) . (']' x 524000))
--- more_headers
Content-Type: application/json
--- error_code: 400
--- response_body_like: "code":"invalid_json","message":"malformed JSON: [^"]*comments are not enabled
--- wait: 0.3
--- check
sidecar_lives('after the 1 MB bracket bomb');



=== TEST 2: the same bomb without a comment (and objects 170,000 deep, straight to the sidecar): 400 at depth 33
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
login_with(('[' x 524000) . (']' x 524000))
--- error_code: 400
--- response_body_like: "message":"JSON nested deeper than 32 levels"
--- check
my $r = sidecar_api(POST => $::LOGIN, '{"a":' x 170000 . '1' . '}' x 170000);
is($r->{status}, 400, 'objects 170,000 deep: 400');
like($r->{body}, qr/nested deeper than 32/, 'objects 170,000 deep: says why');
sidecar_lives('after the bombs');



=== TEST 3: comments in any form are refused
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { login_with($_) }
 '/**/{"email":"c@example.com","password":"x"}',
 "{\"email\":\"c\@example.com\", // note\n \"password\":\"x\"}",
 '{"email":"c@example.com","password":"x"} /* trailing */',
 "{\"email\":\"c\@example.com\",\"password\":\"x\"}\n// trailing",
 '{"email":"c@example.com",/*"*/"password":"x"}',
 '/*"*/[[[[]]]]']
--- error_code eval
[(400) x 6]
--- response_body_like eval
[('"code":"invalid_json","message":"malformed JSON: [^"]*comment') x 2,
 ('"code":"invalid_json","message":"malformed JSON: [^"]*trailing garbage')
 x 2,
 ('"code":"invalid_json","message":"malformed JSON: [^"]*comment') x 2]



=== TEST 4: depth 32 is parsed (then the field is refused), depth 33 is not
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[login_with(nested(32)), login_with(nested(33)),
 login_with('{"email":"deep@example.com","password":"x","pad":'
            . ('{"a":' x 31) . '1' . ('}' x 31) . '}'),
 login_with('{"email":"deep@example.com","password":"x","pad":'
            . ('{"a":' x 32) . '1' . ('}' x 32) . '}')]
--- error_code eval
[422, 400, 422, 400]
--- response_body_like eval
['password.. must be a string', 'JSON nested deeper than 32 levels',
 'unknown field ..pad', 'JSON nested deeper than 32 levels']



=== TEST 5: brackets and comment markers inside strings are text, not depth
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
login_with('{"email":"str@example.com","password":"' . ('[{' x 250)
           . '/*' . ('}]' x 250) . '"}')
--- error_code: 401
--- response_body_like: "code":"invalid_credentials"



=== TEST 6: huge numbers parse as numbers: string and integer fields refuse them (422)
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[login_with('{"email":"num@example.com","password":1e999999}'),
 login_with('{"email":"num@example.com","password":' . ('9' x 500000) . '}'),
 login_with('{"email":"num@example.com","password":-' . ('1' x 300000)
            . '.5e-99999999999}'),
 "POST $::KEYS\n{\"name\":\"k\",\"rpm\":99999999999999999999}",
 "POST $::KEYS\n{\"name\":\"k\",\"rpm\":-9223372036854775809}",
 "POST $::KEYS\n{\"name\":\"k\",\"rpm\":1e3}",
 "POST $::KEYS\n{\"name\":\"k\",\"rpm\":60.0}",
 "POST $::KEYS\n{\"name\":\"k\",\"rpm\":9223372036854775807}"]
--- more_headers eval
$::AUTH
--- error_code eval
[(422) x 8]
--- response_body_like eval
[('password.. must be a string') x 3, ('rpm.. must be an integer') x 4,
 'rpm.. must be between 1 and 2147483647']



=== TEST 7: invalid UTF-8, raw or escaped, in a string or a key: 400
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { login_with($_) }
 "{\"email\":\"u\@example.com\",\"password\":\"\xff\"}",
 "{\"email\":\"u\@example.com\",\"password\":\"\xc3\"}",
 "{\"email\":\"u\@example.com\",\"password\":\"\xc0\xaf\"}",
 "{\"email\":\"u\@example.com\",\"password\":\"\xe0\x80\xaf\"}",
 "{\"email\":\"u\@example.com\",\"password\":\"\xed\xa0\x80\"}",
 "{\"email\":\"u\@example.com\",\"password\":\"\xf4\x90\x80\x80\"}",
 '{"email":"u@example.com","password":"\\udc00"}',
 "{\"email\":\"u\@example.com\",\"pass\xffword\":\"x\"}"]
--- error_code eval
[(400) x 8]
--- response_body_like eval
['"code":"invalid_json"']



=== TEST 8: well-formed UTF-8, raw and escaped, is taken
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[login_with("{\"email\":\"u8\@example.com\",\"password\":\"na\xc3\xafve \xe4\xb8\x9c \xf0\x9f\x94\x91\"}"),
 login_with('{"email":"u8@example.com","password":"na\u00efve \u4e1c \ud83d\udd11"}')]
--- error_code eval
[401, 401]
--- response_body_like eval
['"code":"invalid_credentials"']



=== TEST 9: trailing garbage and a second document: 400; trailing space is fine
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { login_with($_) }
 '{"email":"tg@example.com","password":"x"}x',
 '{"email":"tg@example.com","password":"x"}{"a":1}',
 '{"email":"tg@example.com","password":"x"},',
 '{"email":"tg@example.com","password":"x"}]',
 "{\"email\":\"tg\@example.com\",\"password\":\"x\"} \r\n\t"]
--- error_code eval
[400, 400, 400, 400, 401]
--- response_body_like eval
[('"code":"invalid_json","message":"malformed JSON: [^"]*trailing garbage')
 x 4, '"code":"invalid_credentials"']



=== TEST 10: a duplicate key is refused (which one would count is ambiguous)
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[login_with('{"email":"a@example.com","password":"x","email":"b@example.com"}'),
 login_with('{"email":"d@example.com","password":"x","pad":{"k":1,"k":2}}'),
 login_with('{"email":"d@example.com","password":"x","pad":['
            . join(',', map { "{\"k$_\":$_}" } 1 .. 300) . ']}'),
 login_with('{"email":"d@example.com","password":"x","pad":{'
            . join(',', map { "\"k$_\":$_" } 1 .. 3000, 17) . '}}'),
 login_with('{"email":"d@example.com","password":"x","pad":{"k":1,"K":2,'
            . '"k\u0301":3,"k ":4}}')]
--- error_code eval
[400, 400, 422, 400, 422]
--- response_body_like eval
['"code":"invalid_json","message":"duplicate key ..email.."',
 'duplicate key ..k..",', 'unknown field ..pad',
 'duplicate key ..k17..",', 'unknown field ..pad']



=== TEST 11: empty and blank bodies: 400
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["POST $::LOGIN", login_with(" \r\n\t ")]
--- error_code eval
[400, 400]
--- response_body_like eval
['"message":"request body is empty"', '"message":"malformed JSON: ']



=== TEST 12: U+0000 in a string or a key (C strings cannot hold it): 422
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[login_with('{"email":"nul@example.com","password":"a\u0000b"}'),
 login_with('{"email":"nul@example.com","pass\u0000word":"x"}'),
 login_with('{"email":"nul@example.com","password":"a\\\\u0000b"}'),
 login_with("{\"email\":\"nul\@example.com\",\"password\":\"a\0b\"}")]
--- error_code eval
[422, 422, 401, 400]
--- response_body_like eval
['"code":"invalid_field","message":"strings must not contain NUL characters',
 '"code":"invalid_field","message":"strings must not contain NUL characters',
 '"code":"invalid_credentials"', '"message":"request body contains a NUL byte"']



=== TEST 13: more than 100,000 values: 400 (100,000 are parsed)
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[login_with('{"email":"v@example.com","password":"x","pad":['
            . join(',', (0) x 99996) . ']}'),
 login_with('{"email":"v@example.com","password":"x","pad":['
            . join(',', (0) x 99997) . ']}')]
--- error_code eval
[422, 400]
--- response_body_like eval
['unknown field ..pad', '"message":"JSON holds more than 100000 values"']



=== TEST 14: tokens are JSON too (libjwt's parser): deep headers and payloads get 401
--- config
    location /platform/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
["GET /platform/api/global/tenants", "GET /platform/api/global/tenants",
 "GET /platform/api/global/tenants"]
--- more_headers eval
["Authorization: Bearer " . token_of('[' x 2047 . ']' x 2047, '{}'),
 "Authorization: Bearer " . token_of('/*"*/' . '[' x 2500 . ']' x 2500, '{}'),
 "Authorization: Bearer " . token_of('{"alg":"HS256","typ":"JWT"}',
                                     '{"a":' x 900 . '1' . '}' x 900)]
--- error_code eval
[401, 401, 401]
--- response_body_like eval
['"code":"(?:invalid|unauthorized)[a-z_]*"']
--- check
sidecar_lives('after the token bombs');



=== TEST 15: after all of that the sidecar still serves
--- config
    location = /health {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /health
--- error_code: 200
--- response_body_like: "status":"ok"
--- check
sidecar_lives('at the end');
