# Hardening II, findings 2 and 3 (issue 13): a tenant admin's rules cannot
# cost the gateway more than its budgets, and a rule that cannot finish
# does not let the request through.
#
# - Compile budgets at write time: the sidecar compiles a rule, then the
#   tenant's enabled rules, with the gateway's engine and refuses (422
#   policy_too_large, naming the rule and the size) a rule over 1 MiB
#   compiled or a set over 4 MiB; of 200 maximal rules only what fits is
#   stored.
# - At compile time in nginx: trueport_policy_budget; a set over it is
#   refused with 503 and cached as unusable (compiled once per revision).
# - Each worker's cache of sets is bounded by trueport_policy_cache bytes,
#   the least recently used tenant's set evicted first.
# - Fail closed: a block or redact regex rule that runs out of PCRE2's
#   limits is a 403 policy_unavailable in the provider's shape with a
#   violation (detector "unfinished", the reason); a log rule fails open
#   and records that it did; each rule has its own time budget, so slow
#   early rules do not spend a later block rule's.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use Test::TruePort::Policy;
use File::Path qw(make_path);
use Time::HiRes qw(sleep time);

# one worker: the cache tests count what that worker compiled
workers(1);

our $SPOOL = work_dir() . '/spool';
make_path($SPOOL, { mode => 0755 });

# the load's JSON limit lowered from 1 MiB, for TEST 3
use_sidecar(env => { TRUEPORT_SPOOL_DIR => $SPOOL,
                     TRUEPORT_POLICY_LOAD_BYTES => 100000 });
gw_setup(policy => 1);

# n random 10-character words (a-z, 0-9): ~1.5 KB compiled per word, since
# they share few prefixes (600 words: ~0.9 MB, under the 1 MiB of a rule)
srand(13);
sub words {
    my ($n) = @_;
    my @a = ('a' .. 'z', 0 .. 9);
    return [ map { join '', map { $a[int rand 36] } 1 .. 10 } 1 .. $n ];
}

sub kw_rule {
    my ($name, $n, $action) = @_;
    return { name => $name, type => 'keywords', action => $action // 'log',
             config => { keywords => words($n) } };
}

our $W = gw_tenant();                 # write-time budgets

our $B = gw_tenant();                 # over the gateway's budget
our $BK = gw_key($B, rpm => 1000);
policy_rule($B, kw_rule('big list', 100));

our @L = map { gw_tenant() } 1 .. 3;  # the cache's LRU
our @LK = map { gw_key($_, rpm => 1000) } @L;
policy_rule($_, kw_rule('list', 250)) for @L;

our $E = gw_tenant();                 # rules that cannot finish
our $EK = gw_key($E, rpm => 1000);
gw_config($E, 'log_prompts', JSON::PP::true());
policy_rule($E, { name => 'backtracking block', type => 'regex', action => 'block',
           config => { patterns => ['(a+)+$'] }, priority => 10 });

our $R = gw_tenant();
our $RK = gw_key($R, rpm => 1000);
policy_rule($R, { name => 'backtracking redact', type => 'regex',
           action => 'redact', config => { patterns => ['(a+)+$'] } });

our $G = gw_tenant();
our $GK = gw_key($G, rpm => 1000);
policy_rule($G, { name => 'backtracking log', type => 'regex', action => 'log',
           config => { patterns => ['(a+)+$'] } });

# two slow log rules (each ~0.5 us at each of 150,000 start positions,
# far beyond a rule's 10 ms, never at PCRE2's limits), then a block rule
our $S = gw_tenant();
our $SK = gw_key($S, rpm => 1000);
policy_rule($S, { name => "slow $_", type => 'regex', action => 'log',
           config => { patterns => ['(?:a|b){1,200}c'] }, priority => $_ })
    for 1, 2;
policy_rule($S, { name => 'secret', type => 'regex', action => 'block',
           config => { patterns => ['secret'] }, priority => 3 });

our $HTTP = gw_http_config()
            . "    trueport_spool $SPOOL max_size=1m max_age=1s;\n";
gw_env(
    BKEY => $BK->{key}, EKEY => $EK->{key}, RKEY => $RK->{key},
    GKEY => $GK->{key}, SKEY => $SK->{key},
    (map { ("LKEY$_" => $LK[$_]{key}) } 0 .. 2),
    GW_HTTP_SPOOL => $HTTP,
    GW_HTTP_SMALL => $HTTP
        . "    trueport_policy_budget set=64k rule=64k regex=64k;\n",
    GW_HTTP_LRU => $HTTP
        . "    trueport_policy_budget set=1m rule=1m;\n"
        . "    trueport_policy_cache 1m;\n",
);

our @PROV = qw(openai anthropic google);

sub requests {
    my ($text, @prov) = @_;
    return [ map { "POST " . chat_uri($_) . "\n" . chat_body($_, $text) } @prov ? @prov : @PROV ];
}

# a's that make (a+)+$ backtrack at the first start position
our $EVIL = ('a' x 30000) . '! tell me';

# lines of nginx's error log that match
sub log_lines {
    my ($re) = @_;
    open my $fh, '<', work_dir() . '/logs/error.log' or return 0;
    return scalar grep { /$re/ } <$fh>;
}

run_tests();

__DATA__

=== TEST 1: a rule over the budget of one rule: 422 policy_too_large naming it and its size, nothing stored
--- init
$::tok = $::W->{token};
$::body = json_encode(main::kw_rule('two thousand words', 2000, 'block'));
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /trueportai-services/api/v1/policies\n$::body"
--- more_headers eval
"Authorization: Bearer $::tok\nContent-Type: application/json"
--- error_code: 422
--- response_body_like: ^\{"error":\{"code":"policy_too_large","message":"rule \\"two thousand words\\": config.keywords: compiles to at least \d+ bytes, over the budget of 1048576 bytes for one rule"
--- check
my ($n) = dbh()->selectrow_array('SELECT count(*) FROM policies WHERE tenant_id = ?',
                                 undef, $main::W->{id});
is($n, 0, 'nothing stored');



=== TEST 2: 200 maximal rules: what fits the 4 MiB of a set is stored, every other one is a 422
--- init
my %st;
my @refused;
for my $i (1 .. 200) {
    my $r = main::policy_post($::W, main::kw_rule("maximal $i", 600, 'block'));
    $st{$r->{status}}++;
    push @refused, $r->{body} if $r->{status} != 201;
}
is($st{201}, 4, 'four rules of ~0.9 MB compiled fit the set budget');
is($st{422}, 196, 'the other 196: 422');
is(scalar(grep { /"code":"policy_too_large"/ && /over the budget of 4194304 bytes for a rule set/ } @refused),
   196, 'each refusal says why: the set budget') or diag $refused[0];
like($refused[0], qr/rule \\"maximal 5\\" compiles to \d+ bytes: with the organisation's other enabled rules that is \d+ bytes/,
     'it names the rule, its size and the total');
my ($n) = dbh()->selectrow_array('SELECT count(*) FROM policies WHERE tenant_id = ?',
                                 undef, $::W->{id});
is($n, 4, 'four stored');
my $r = sidecar_internal_api(GET => "/internal/v1/policies?tenant_id=$::W->{id}", undef,
                             { 'X-TruePort-Internal-Token' => internal_token() });
is($r->{status}, 200, 'the gateway load answers');
# a disabled rule is not compiled by the gateway: it is not counted
$r = main::policy_post($::W, { %{ main::kw_rule('maximal off', 600, 'block') }, enabled => JSON::PP::false() });
is($r->{status}, 201, 'a disabled maximal rule is stored');
$::tok = $::W->{token};
$::id = $r->{json}{id};
$::put = json_encode({ %{ main::kw_rule('maximal off', 600, 'block') }, enabled => JSON::PP::true() });
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"PUT /trueportai-services/api/v1/policies/$::id\n$::put"
--- more_headers eval
"Authorization: Bearer $::tok\nContent-Type: application/json"
--- error_code: 422
--- response_body_like: "code":"policy_too_large"
--- check
my ($on) = dbh()->selectrow_array('SELECT enabled FROM policies WHERE id = ?', undef, $::id);
ok(!$on, 'enabling it would pass the set budget: refused, still disabled');



=== TEST 3: rules whose JSON the gateway could not load (over TRUEPORT_POLICY_LOAD_BYTES) are refused
--- init
my $X = main::gw_tenant();
# 8,000 one-letter keywords: ~40 KB of JSON, a small automaton
my $many = { name => 'letters', type => 'keywords', action => 'log',
             config => { keywords => [ map { ('a' .. 'z')[$_ % 26] x (1 + $_ % 3) } 1 .. 8000 ] } };
is(main::policy_post($X, $many)->{status}, 201, 'one: 201');
is(main::policy_post($X, { %$many, name => 'letters 2' })->{status}, 201, 'two: 201');
$::tok = $X->{token};
$::body = json_encode({ %$many, name => 'letters 3' });
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"POST /trueportai-services/api/v1/policies\n$::body"
--- more_headers eval
"Authorization: Bearer $::tok\nContent-Type: application/json"
--- error_code: 422
--- response_body_like: "code":"policy_too_large","message":"rule \\"letters 3\\": the organisation's enabled rules would be \d+ bytes of JSON for the gateway to load, over the limit of 100000 bytes"



=== TEST 4: a set over the gateway's trueport_policy_budget: 503, compiled once, nothing upstream
--- http_config: $TEST_NGINX_GW_HTTP_SMALL
--- config: $TEST_NGINX_GW
--- request eval
main::requests('hello', 'openai', 'anthropic')
--- more_headers
x-api-key: $TEST_NGINX_BKEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[503, 503]
--- response_body_like eval
[qr/^\{"error":\{"message":"the organisation's policies cannot be compiled by the gateway \(over its compile budget, or invalid\); an administrator must change them","type":"server_error","param":null,"code":"gateway_unavailable"\}\}$/,
 qr/"type":"api_error","message":"the organisation's policies cannot be compiled/]
--- check
is(main::log_lines(qr/policies of tenant \Q$main::B->{id}\E at revision \d+ not usable: rule [0-9a-f-]+: config\.keywords: compiles to at least \d+ bytes, over the budget of 65536 bytes/),
   1, 'compiled once: the unusable set is cached at its revision');
is(scalar main::mock_bodies_with('hello'), 0, 'nothing reached the provider');
--- error_log
not usable



=== TEST 5: each worker's cache is bounded by bytes: the least recently used set is evicted
--- http_config: $TEST_NGINX_GW_HTTP_LRU
--- config: $TEST_NGINX_GW
--- request eval
main::requests('hello', ('openai') x 6)
--- more_headers eval
[map { "x-api-key: $_\nContent-Type: application/json" }
     map { $ENV{"TEST_NGINX_LKEY$_"} } 0, 1, 0, 2, 0, 1]
--- error_code eval
[(200) x 6]
--- check
my @n = map { main::log_lines(qr/policies of tenant \Q$main::L[$_]{id}\E at revision \d+ loaded/) } 0 .. 2;
# L0, L1 loaded; L0 used; L2 loaded: over 1 MB, L1 (least recently used)
# goes, not L0; L0 used again; L1 loaded again
is_deeply(\@n, [1, 2, 1], 'loads: L0 once, L1 twice (evicted), L2 once');
my ($mem) = main::log_lines(qr/at revision \d+ loaded, \d+ bytes compiled, \d+ in memory/);
ok($mem >= 4, 'the log says what each set costs');



=== TEST 6: a block rule whose regex cannot finish: 403 policy_unavailable in each provider's shape, nothing upstream
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::requests($main::EVIL)
--- more_headers
x-api-key: $TEST_NGINX_EKEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[403, 403, 403]
--- response_body_like eval
[qr/^\{"error":\{"message":"policy 'backtracking block' could not finish checking the request \(match limit\); violation [0-9a-f-]{36}","type":"invalid_request_error","param":null,"code":"policy_unavailable"\}\}$/,
 qr/^\{"type":"error","error":\{"type":"permission_error","message":"policy 'backtracking block' could not finish checking the request \(match limit\); violation [0-9a-f-]{36}"\}/,
 qr/^\{"error":\{"code":403,"message":"policy 'backtracking block' could not finish.*","status":"PERMISSION_DENIED"/]
--- check
is(scalar main::mock_bodies_with('aaaaaaaaaa'), 0, 'nothing reached the provider');
for my $i (0 .. 2) {
    my $res = $main::responses[$i];
    my ($id) = $res->{body} =~ /violation ([0-9a-f-]{36})/ or next;
    is($res->{headers}{'x-trueport-violation-id'}, $id, "$main::PROV[$i]: header");
    my ($v) = @{ main::violations_of($res->{headers}{'x-trueport-request-id'}) };
    ok($v, "$main::PROV[$i]: violation row") or next;
    is("$v->{id} $v->{rule_type}/$v->{action}/$v->{detector}/$v->{excerpt}",
       "$id regex/block/unfinished/match limit", "$main::PROV[$i]: the row says why");
}
--- error_log
regex rules could not finish



=== TEST 7: a redact rule that cannot finish: refused, never sent unredacted
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::requests($main::EVIL)
--- more_headers
x-api-key: $TEST_NGINX_RKEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[403, 403, 403]
--- response_body_like eval
[qr/"code":"policy_unavailable"/, qr/policy 'backtracking redact' could not finish/,
 qr/"status":"PERMISSION_DENIED"/]
--- check
is(scalar main::mock_bodies_with('aaaaaaaaaa'), 0, 'nothing reached the provider');
my ($v) = @{ main::violations_of($main::responses[0]{headers}{'x-trueport-request-id'}) };
is($v && "$v->{action}/$v->{detector}/$v->{excerpt}", 'redact/unfinished/match limit',
   'the row: a redact rule, unfinished (the reason is kept without log_prompts)');



=== TEST 8: a log rule that cannot finish fails open and records that it did
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::requests($main::EVIL, 'openai')
--- more_headers
x-api-key: $TEST_NGINX_GKEY
Content-Type: application/json
--- error_code: 200
--- check
is(scalar main::mock_bodies_with('aaaaaaaaaa'), 1, 'the request went upstream');
my ($v) = @{ main::violations_of($main::res->{headers}{'x-trueport-request-id'}) };
is($v && "$v->{action}/$v->{detector}/$v->{excerpt}", 'log/unfinished/match limit',
   'a log row that says the rule did not finish');
--- error_log
regex rules could not finish



=== TEST 9: each rule its own time: two slow log rules do not spend the budget of the block rule after them
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::requests(('a' x 150000) . ' a secret', 'openai')
--- more_headers
x-api-key: $TEST_NGINX_SKEY
Content-Type: application/json
--- error_code: 403
--- response_body_like: "message":"request blocked by policy 'secret' \(regex\); violation [0-9a-f-]{36}",.*"code":"policy_violation"
--- check
my $rows = main::violations_of($main::res->{headers}{'x-trueport-request-id'}, 3);
is(join(' | ', map { "$_->{rule_name}: $_->{action}/$_->{detector}/" . ($_->{excerpt} // '') } @$rows),
   'secret: block/regex/ | slow 1: log/unfinished/time budget | slow 2: log/unfinished/time budget',
   'the slow rules each stopped by their own 10 ms, the block rule ran');
is(scalar main::mock_bodies_with('secret'), 0, 'nothing reached the provider');
