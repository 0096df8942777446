# The analytics API through nginx: usage logs (filters, newest first,
# pagination), stats (totals, p50/p95, group_by series), policy
# violations (filters, detail), bad filters, tenant isolation, roles and
# the 60 requests/minute/user limit. Rows are written straight into
# usage_logs and violations, as the spool ingester would.
use lib 't/lib';
use Test::TruePort;
use Test::More;
use URI::Escape ();

use_sidecar();

our $API = '/trueportai-services/api/v1/analytics';
our $dbh = dbh();
my $n = 0;

sub uuid { ($dbh->selectrow_array('SELECT gen_random_uuid()'))[0] }

sub tenant {
    $n++;
    my ($id) = $dbh->selectrow_array(
        'INSERT INTO tenants (name, slug) VALUES (?, ?) RETURNING id', undef,
        "Analytics $n", "analytics-$n-$$");
    return $id;
}

sub member {
    my ($tenant, $role) = @_;
    $n++;
    my ($user) = $dbh->selectrow_array(
        q{INSERT INTO users (email, password_hash) VALUES (?, 'x') RETURNING id},
        undef, "an$n-$$\@example.com");
    $dbh->do('INSERT INTO memberships (tenant_id, user_id, role) VALUES (?, ?, ?)',
             undef, $tenant, $user, $role);
    return jwt({ sub => $user, tid => $tenant, role => $role,
                 env => 'production' });
}

our $A = tenant();
our $B = tenant();
our $C = tenant();      # bulk rows for pagination

# The limit is 60/min/user: the blocks' calls rotate over fresh members
# (one per 40 calls) so that only the dedicated block meets the limit.
my (%tok, %used);
sub tok {
    my ($t) = @_;
    if (!$tok{$t} || $used{$t} >= 40) {
        $tok{$t} = member($t, 'member');
        $used{$t} = 0;
    }
    $used{$t}++;
    return $tok{$t};
}

# GET $API$path as a member of tenant $t (or with token $token)
sub get {
    my ($t, $path, $token) = @_;
    return api(GET => "$API$path", undef,
               { Authorization => 'Bearer ' . ($token // tok($t)) });
}

sub q { URI::Escape::uri_escape($_[0]) }

our ($K1, $K2, $KB) = (uuid(), uuid(), uuid());
our ($R1, $R2, $RB) = (uuid(), uuid(), uuid());

# the months of the rows get their partitions, as the ingester does
$dbh->do('SELECT usage_ensure_partition(?::timestamptz)', undef, $_)
    for '2025-01-15T00:00:00Z', '2025-02-15T00:00:00Z';

sub usage {
    my (%r) = @_;
    my $total = defined $r{in} || defined $r{out}
              ? ($r{in} // 0) + ($r{out} // 0) : undef;
    $dbh->do(q{INSERT INTO usage_logs (created_at, request_id, tenant_id,
                 key_id, env, provider, model, path, status, stream,
                 input_tokens, output_tokens, cached_tokens, reasoning_tokens,
                 total_tokens, cost_micro_usd, ttfb_ms, latency_ms, bytes_in,
                 bytes_out, client_ip, error_kind, completed)
               VALUES (?, ?, ?, ?, ?, ?, ?, '/p', ?, false, ?, ?, ?, ?, ?, ?,
                       1, ?, 10, 20, '127.0.0.1', ?, true)}, undef,
             @r{qw(at id tenant key env provider model status in out cached
                   reasoning)}, $total, @r{qw(cost lat err)});
}

# Tenant A: eight rows over five days and two months (1..8, oldest first)
our @A = (
  { at => '2025-01-30T10:15:00Z', key => $K1, provider => 'openai', model => 'gpt-4o', status => 200, env => 'production', in => 100, out => 10, cached => 30, cost => 350, lat => 100 },
  { at => '2025-01-30T10:45:00Z', key => $K1, provider => 'openai', model => 'gpt-4o', status => 200, env => 'production', in => 200, out => 20, cost => 700, lat => 200 },
  { at => '2025-01-30T11:05:00Z', key => $K2, provider => 'anthropic', model => undef, status => 429, env => 'production', lat => 5, err => 'rate_limited' },
  { at => '2025-01-31T09:00:00Z', key => $K2, provider => 'anthropic', model => 'claude-3-5-haiku-20241022', status => 200, env => 'staging', in => 50, out => 5, cost => 60, lat => 300 },
  { at => '2025-02-01T00:00:00Z', key => $K1, provider => 'google', model => 'gemini-2.0-flash', status => 500, env => 'production', in => 10, out => 0, cost => 1, lat => 400, err => 'upstream' },
  { at => '2025-02-02T12:00:00Z', key => $K1, provider => 'openai', model => 'gpt-4o-mini', status => 200, env => 'staging', in => 1000, out => 100, cached => 500, reasoning => 20, cost => 210, lat => 50 },
  { at => '2025-02-03T08:30:00Z', key => undef, provider => 'azure', model => 'gpt4o', status => 200, env => 'production', in => 300, out => 30, cost => undef, lat => 250 },
  { at => '2025-02-03T08:40:00Z', key => $K2, provider => 'openai', model => 'gpt-4o', status => 200, env => 'production', in => 400, out => 40, cost => 1400, lat => 150 },
);
for my $i (0 .. $#A) {
    $A[$i]{id} = "a-req-" . ($i + 1);
    usage(%{ $A[$i] }, tenant => $A);
}
# Tenant B: three rows in the same days, some of them A's look-alikes
our @B = (
  { at => '2025-01-30T10:20:00Z', key => $KB, provider => 'openai', model => 'gpt-4o', status => 200, env => 'production', in => 7, out => 7, cost => 9999, lat => 9000 },
  { at => '2025-02-01T05:00:00Z', key => $KB, provider => 'anthropic', model => 'claude-3-5-haiku-20241022', status => 500, env => 'staging', in => 1, out => 1, cost => 1, lat => 1, err => 'upstream' },
  { at => '2025-02-03T08:35:00Z', key => $KB, provider => 'openai', model => 'gpt-4o', status => 200, env => 'production', in => 3, out => 3, cost => 5, lat => 2 },
);
for my $i (0 .. $#B) {
    $B[$i]{id} = "b-req-" . ($i + 1);
    usage(%{ $B[$i] }, tenant => $B);
}
# Tenant C: 205 rows, one a minute, for the pagination bounds
$dbh->do(q{INSERT INTO usage_logs (created_at, request_id, tenant_id, provider,
             status) SELECT timestamptz '2025-01-10T00:00:00Z'
               + make_interval(mins => g), 'c-req-' || g, ?, 'openai', 200
           FROM generate_series(1, 205) g}, undef, $C);

# Violations: four of A's, one of B's
sub violation {
    my (%v) = @_;
    my $id = uuid();
    $dbh->do(q{INSERT INTO violations (id, created_at, request_id, tenant_id,
                 key_id, env, provider, rule_id, rule_name, rule_type, action,
                 detector, excerpt)
               VALUES (?, ?, ?, ?, ?, 'production', 'openai', ?, ?, 'pii', ?,
                       'email', 'a***@example.com')}, undef,
             $id, @v{qw(at req tenant key rule name action)});
    return $id;
}
our @VA = (
    violation(at => '2025-01-30T10:15:00Z', req => 'a-req-1', tenant => $A, key => $K1, rule => $R1, name => 'no pii', action => 'block'),
    violation(at => '2025-01-31T09:00:00Z', req => 'a-req-4', tenant => $A, key => $K2, rule => $R1, name => 'no pii', action => 'redact'),
    violation(at => '2025-02-02T12:00:00Z', req => 'a-req-6', tenant => $A, key => $K1, rule => $R2, name => 'secrets', action => 'log'),
    violation(at => '2025-02-03T08:40:00Z', req => 'a-req-8', tenant => $A, key => $K1, rule => $R2, name => 'secrets', action => 'block'),
);
our $VB = violation(at => '2025-02-01T05:00:00Z', req => 'b-req-2', tenant => $B, key => $KB, rule => $RB, name => 'b rule', action => 'block');

our $viewer = member($A, 'viewer');
our $member = member($A, 'member');
our $admin = member($A, 'admin');
our $burst = member($A, 'member');     # only the rate-limit block uses it

# the request ids of a list response
sub ids { [ map { $_->{request_id} } @{ $_[0]{json}{items} || [] } ] }

# checks status, item count and total of a logs (or violations) query
sub count_is {
    my ($t, $path, $items, $total, $what) = @_;
    my $r = get($t, $path);
    is($r->{status}, 200, "$what: 200") or diag($r->{body});
    is(scalar @{ $r->{json}{items} || [] }, $items, "$what: $items items");
    is($r->{json}{total}, $total, "$what: total $total");
    return $r;
}

sub bad {
    my ($t, $path, $code, $what) = @_;
    my $r = get($t, $path);
    is($r->{status}, 400, "$what: 400") or diag($r->{body});
    is($r->{json}{error}{code} // $r->{json}{code}, $code, "$what: $code")
        or diag($r->{body});
}

run_tests();

__DATA__

=== TEST 1: no token: 401
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/analytics/logs
--- error_code: 401
--- response_body_like: "code":"unauthorized"



=== TEST 2: logs: a member gets the tenant's rows, newest first, every field
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/analytics/logs
--- more_headers eval
"Authorization: Bearer $::member"
--- error_code: 200
--- response_headers
Content-Type: application/json
--- check
my $j = $main::res->{json};
is_deeply(main::ids($main::res), [map { "a-req-$_" } reverse 1 .. 8],
          'newest first, only A rows');
is($j->{total}, 8, 'total 8');
is($j->{limit}, 50, 'default limit') if defined $j->{limit};
is($j->{offset}, 0, 'offset 0');
my $r8 = $j->{items}[0];
is($r8->{created_at}, '2025-02-03T08:40:00.000Z', 'created_at in UTC');
is($r8->{key_id}, $::K2, 'key_id');
is($r8->{provider}, 'openai', 'provider');
is($r8->{model}, 'gpt-4o', 'model');
is($r8->{status}, 200, 'status is a number');
is($r8->{env}, 'production', 'env');
is($r8->{input_tokens}, 400, 'input_tokens');
is($r8->{output_tokens}, 40, 'output_tokens');
is($r8->{total_tokens}, 440, 'total_tokens');
is($r8->{cost_micro_usd}, 1400, 'cost');
is($r8->{latency_ms}, 150, 'latency');
ok(!$r8->{stream} && $r8->{completed}, 'booleans');
my $r7 = $j->{items}[1];
is($r7->{key_id}, undef, 'no key: null');
is($r7->{cost_micro_usd}, undef, 'unpriced: null cost');
my $r3 = $j->{items}[5];
is($r3->{model}, undef, 'no model: null');
is($r3->{error_kind}, 'rate_limited', 'error_kind');
is($r3->{input_tokens}, undef, 'no tokens: null');
--- no_error_log
[error]



=== TEST 3: logs: each filter, exact counts and totals
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- check
my $A = $::A;
main::count_is($A, "/logs?key_id=$::K1", 4, 4, 'key_id K1');
main::count_is($A, "/logs?key_id=$::K2", 3, 3, 'key_id K2');
main::count_is($A, "/logs?key_id=$::KB", 0, 0, "key_id of B's key");
main::count_is($A, '/logs?provider=openai', 4, 4, 'provider openai');
main::count_is($A, '/logs?provider=azure', 1, 1, 'provider azure');
main::count_is($A, '/logs?provider=google', 1, 1, 'provider google');
main::count_is($A, '/logs?model=gpt-4o', 3, 3, 'model gpt-4o');
main::count_is($A, '/logs?model=gpt-4o-mini', 1, 1, 'model gpt-4o-mini');
main::count_is($A, '/logs?model=nope', 0, 0, 'unknown model: none');
main::count_is($A, '/logs?status=200', 6, 6, 'status 200');
main::count_is($A, '/logs?status=429', 1, 1, 'status 429');
main::count_is($A, '/logs?status=500', 1, 1, 'status 500');
main::count_is($A, '/logs?env=staging', 2, 2, 'env staging');
main::count_is($A, '/logs?env=production', 6, 6, 'env production');
my $r = main::count_is($A, '/logs?from=2025-02-01T00:00:00Z', 4, 4,
                       'from is inclusive');
is_deeply(main::ids($r), [map { "a-req-$_" } 8, 7, 6, 5], '... rows 8..5');
$r = main::count_is($A, '/logs?to=2025-02-01T00:00:00Z', 4, 4,
                    'to is exclusive');
is_deeply(main::ids($r), [map { "a-req-$_" } 4, 3, 2, 1], '... rows 4..1');
$r = main::count_is($A, '/logs?from=2025-01-30T10:45:00Z&to=2025-02-02T12:00:00Z',
                    4, 4, 'from and to');
is_deeply(main::ids($r), [map { "a-req-$_" } 5, 4, 3, 2], '... rows 5..2');
main::count_is($A, '/logs?from=' . main::q('2025-01-31T10:00:00+01:00'),
               5, 5, 'from with an offset');
main::count_is($A, "/logs?key_id=$::K1&provider=openai", 3, 3,
               'key_id and provider');
main::count_is($A, '/logs?provider=openai&model=gpt-4o&env=production&status=200'
               . '&from=2025-02-01T00:00:00Z', 1, 1, 'five filters');
main::count_is($A, '/logs?env=staging&limit=1', 1, 2,
               'limit smaller than total');
--- no_error_log
[error]



=== TEST 4: pagination envelope bounds
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- check
my $C = $::C;
for my $l (0, 201, 'abc', -1, '') {
    main::bad($C, "/logs?limit=$l", 'invalid_pagination', "limit '$l'");
}
main::bad($C, '/logs?offset=-1', 'invalid_pagination', 'offset -1');
main::bad($C, '/logs?offset=x', 'invalid_pagination', 'offset x');
main::bad($C, '/violations?limit=0', 'invalid_pagination', 'violations limit 0');
main::bad($C, '/violations?limit=201', 'invalid_pagination', 'violations limit 201');
my $r = main::count_is($C, '/logs?limit=200', 200, 205, 'limit 200');
is($r->{json}{limit}, 200, 'limit echoed');
is($r->{json}{items}[0]{request_id}, 'c-req-205', 'newest first');
is($r->{json}{items}[199]{request_id}, 'c-req-6', 'the 200th');
$r = main::count_is($C, '/logs?limit=200&offset=200', 5, 205, 'the last page');
is_deeply(main::ids($r), [map { "c-req-$_" } reverse 1 .. 5], '... rows 5..1');
is($r->{json}{offset}, 200, 'offset echoed');
main::count_is($C, '/logs?offset=205', 0, 205, 'offset at total');
main::count_is($C, '/logs?offset=100000', 0, 205, 'offset beyond total');
main::count_is($C, '/logs?limit=1', 1, 205, 'limit 1');
main::count_is($C, '/logs', 50, 205, 'default limit 50');
main::count_is($::A, '/logs?offset=7', 1, 8, 'A: the last row');
main::count_is($::A, '/violations?offset=4', 0, 4, 'violations: offset at total');
--- no_error_log
[error]



=== TEST 5: bad filters: 400
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- check
my $A = $::A;
for my $ep ('/logs', '/stats', '/violations') {
    main::bad($A, "$ep?key_id=abc", 'invalid_filter', "$ep non-uuid key_id");
    main::bad($A, "$ep?from=notadate", 'invalid_filter', "$ep bad from");
    main::bad($A, "$ep?to=2025-13-45T00:00:00Z", 'invalid_filter', "$ep bad to");
}
main::bad($A, '/logs?provider=bedrock', 'invalid_filter', 'unknown provider');
main::bad($A, '/logs?provider=OpenAI', 'invalid_filter', 'provider is case-sensitive');
main::bad($A, '/logs?status=99', 'invalid_filter', 'status 99');
main::bad($A, '/logs?status=600', 'invalid_filter', 'status 600');
main::bad($A, '/logs?status=abc', 'invalid_filter', 'status abc');
main::bad($A, '/logs?status=', 'invalid_filter', 'empty status');
main::bad($A, '/logs?status=200x', 'invalid_filter', 'status 200x');
main::bad($A, '/logs?model=' . ('m' x 129), 'invalid_filter', 'model too long');
main::bad($A, '/logs?env=' . ('e' x 33), 'invalid_filter', 'env too long');
main::bad($A, '/logs?from=2025-02-30T00:00:00Z', 'invalid_filter', 'February 30');
main::bad($A, '/stats?provider=bedrock', 'invalid_filter', 'stats: unknown provider');
main::bad($A, '/violations?rule_id=1', 'invalid_filter', 'violations: non-uuid rule_id');
main::bad($A, '/violations?action=deny', 'invalid_filter', 'violations: bad action');
--- no_error_log
[error]



=== TEST 6: stats: totals of a window, exact figures
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/analytics/stats?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z
--- more_headers eval
"Authorization: Bearer $::member"
--- error_code: 200
--- check
my $j = $main::res->{json};
is($j->{from}, '2025-01-01T00:00:00Z', 'from echoed');
is($j->{to}, '2025-03-01T00:00:00Z', 'to echoed');
ok(!exists $j->{series}, 'no series without group_by');
is_deeply($j->{totals}, {
    requests => 8, errors => 2, input_tokens => 2060, output_tokens => 205,
    cached_tokens => 530, reasoning_tokens => 20, total_tokens => 2265,
    cost_micro_usd => 2721, unpriced_requests => 1,
    latency_p50_ms => 175, latency_p95_ms => 365,
}, 'totals of A over both months') or diag($main::res->{body});

my $r = main::get($::A, '/stats?from=2025-01-01T00:00:00Z&to=2025-02-01T00:00:00Z');
is_deeply($r->{json}{totals}, {
    requests => 4, errors => 1, input_tokens => 350, output_tokens => 35,
    cached_tokens => 30, reasoning_tokens => 0, total_tokens => 385,
    cost_micro_usd => 1110, unpriced_requests => 0,
    latency_p50_ms => 150, latency_p95_ms => 285,
}, 'January only') or diag($r->{body});

$r = main::get($::A, '/stats?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z&env=staging');
is($r->{json}{totals}{requests}, 2, 'env staging: 2 requests');
is($r->{json}{totals}{input_tokens}, 1050, 'env staging: input tokens');
$r = main::get($::A, '/stats?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z&provider=openai');
is($r->{json}{totals}{requests}, 4, 'provider openai: 4 requests');
is($r->{json}{totals}{cost_micro_usd}, 2660, 'provider openai: cost');
$r = main::get($::A, "/stats?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z&key_id=$::K2");
is($r->{json}{totals}{requests}, 3, 'key K2: 3 requests');
is($r->{json}{totals}{errors}, 1, 'key K2: 1 error');
# model and status narrow the stats as they narrow the logs (they were
# validated but ignored once)
$r = main::get($::A, '/stats?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z&model=gpt-4o');
is($r->{json}{totals}{requests}, 3, 'model gpt-4o: 3 requests');
is($r->{json}{totals}{cost_micro_usd}, 2450, 'model gpt-4o: cost');
$r = main::get($::A, '/stats?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z&status=200&group_by=provider');
is($r->{json}{totals}{requests}, 6, 'status 200: 6 requests');
is($r->{json}{totals}{errors}, 0, 'status 200: no errors');
is_deeply([map { "$_->{provider}:$_->{requests}" } @{ $r->{json}{series} }],
          ['anthropic:1', 'azure:1', 'openai:4'], 'status 200: provider series');
main::bad($::A, '/stats?status=99', 'invalid_filter', 'stats: status 99');

$r = main::get($::A, '/stats?from=2024-01-01T00:00:00Z&to=2024-02-01T00:00:00Z');
is_deeply($r->{json}{totals}, {
    requests => 0, errors => 0, input_tokens => 0, output_tokens => 0,
    cached_tokens => 0, reasoning_tokens => 0, total_tokens => 0,
    cost_micro_usd => 0, unpriced_requests => 0,
    latency_p50_ms => undef, latency_p95_ms => undef,
}, 'an empty window: zeros and null percentiles') or diag($r->{body});

# the default window is the last 30 days: the 2025 rows are older
$r = main::get($::A, '/stats');
is($r->{status}, 200, 'no window: 200');
is($r->{json}{from}, undef, 'from: null');
is($r->{json}{totals}{requests}, 0, 'default window: the last 30 days only');
--- no_error_log
[error]



=== TEST 7: stats: group_by series with exact figures
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- check
my $w = 'from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z';
sub pick { my ($s, @k) = @_; +{ map { $_ => $s->{$_} } @k } }
my @k = qw(requests errors input_tokens output_tokens cost_micro_usd
           unpriced_requests);

my $r = main::get($::A, "/stats?$w&group_by=day");
is($r->{status}, 200, 'day: 200');
is($r->{json}{group_by}, 'day', 'group_by echoed');
is($r->{json}{totals}{requests}, 8, 'totals still there');
is_deeply([map { pick($_, 'day', @k) } @{ $r->{json}{series} }], [
    { day => '2025-01-30', requests => 3, errors => 1, input_tokens => 300, output_tokens => 30, cost_micro_usd => 1050, unpriced_requests => 0 },
    { day => '2025-01-31', requests => 1, errors => 0, input_tokens => 50, output_tokens => 5, cost_micro_usd => 60, unpriced_requests => 0 },
    { day => '2025-02-01', requests => 1, errors => 1, input_tokens => 10, output_tokens => 0, cost_micro_usd => 1, unpriced_requests => 0 },
    { day => '2025-02-02', requests => 1, errors => 0, input_tokens => 1000, output_tokens => 100, cost_micro_usd => 210, unpriced_requests => 0 },
    { day => '2025-02-03', requests => 2, errors => 0, input_tokens => 700, output_tokens => 70, cost_micro_usd => 1400, unpriced_requests => 1 },
], 'day series') or diag($r->{body});
is($r->{json}{series}[0]{latency_p50_ms}, 100, 'day 2025-01-30: p50');
is($r->{json}{series}[0]{cached_tokens}, 30, 'day 2025-01-30: cached');
is($r->{json}{series}[3]{reasoning_tokens}, 20, 'day 2025-02-02: reasoning');

$r = main::get($::A, '/stats?from=2025-01-30T00:00:00Z&to=2025-01-31T00:00:00Z&group_by=hour');
is_deeply([map { pick($_, 'hour', @k) } @{ $r->{json}{series} }], [
    { hour => '2025-01-30T10:00:00Z', requests => 2, errors => 0, input_tokens => 300, output_tokens => 30, cost_micro_usd => 1050, unpriced_requests => 0 },
    { hour => '2025-01-30T11:00:00Z', requests => 1, errors => 1, input_tokens => 0, output_tokens => 0, cost_micro_usd => 0, unpriced_requests => 0 },
], 'hour series') or diag($r->{body});
is($r->{json}{series}[0]{latency_p50_ms}, 150, 'hour 10: p50');

my %by;
$r = main::get($::A, "/stats?$w&group_by=model");
%by = map { $_->{model} => pick($_, qw(requests errors input_tokens cost_micro_usd)) } @{ $r->{json}{series} };
is_deeply(\%by, {
    'gpt-4o' => { requests => 3, errors => 0, input_tokens => 700, cost_micro_usd => 2450 },
    'gpt-4o-mini' => { requests => 1, errors => 0, input_tokens => 1000, cost_micro_usd => 210 },
    'gpt4o' => { requests => 1, errors => 0, input_tokens => 300, cost_micro_usd => 0 },
    'claude-3-5-haiku-20241022' => { requests => 1, errors => 0, input_tokens => 50, cost_micro_usd => 60 },
    'gemini-2.0-flash' => { requests => 1, errors => 1, input_tokens => 10, cost_micro_usd => 1 },
    'unknown' => { requests => 1, errors => 1, input_tokens => 0, cost_micro_usd => 0 },
}, 'model series (no model: unknown)') or diag($r->{body});

$r = main::get($::A, "/stats?$w&group_by=provider");
is_deeply([map { pick($_, 'provider', qw(requests errors total_tokens cost_micro_usd)) } @{ $r->{json}{series} }], [
    { provider => 'anthropic', requests => 2, errors => 1, total_tokens => 55, cost_micro_usd => 60 },
    { provider => 'azure', requests => 1, errors => 0, total_tokens => 330, cost_micro_usd => 0 },
    { provider => 'google', requests => 1, errors => 1, total_tokens => 10, cost_micro_usd => 1 },
    { provider => 'openai', requests => 4, errors => 0, total_tokens => 1870, cost_micro_usd => 2660 },
], 'provider series') or diag($r->{body});

$r = main::get($::A, "/stats?$w&group_by=key");
%by = map { $_->{key} => pick($_, qw(requests errors input_tokens cost_micro_usd unpriced_requests)) } @{ $r->{json}{series} };
is_deeply(\%by, {
    $::K1 => { requests => 4, errors => 1, input_tokens => 1310, cost_micro_usd => 1261, unpriced_requests => 0 },
    $::K2 => { requests => 3, errors => 1, input_tokens => 450, cost_micro_usd => 1460, unpriced_requests => 0 },
    none => { requests => 1, errors => 0, input_tokens => 300, cost_micro_usd => 0, unpriced_requests => 1 },
}, 'key series (no key: none)') or diag($r->{body});

$r = main::get($::A, "/stats?$w&group_by=day&provider=openai&env=production");
is_deeply([map { pick($_, 'day', 'requests') } @{ $r->{json}{series} }], [
    { day => '2025-01-30', requests => 2 }, { day => '2025-02-03', requests => 1 },
], 'day series with filters');

$r = main::get($::A, '/stats?from=2024-01-01T00:00:00Z&to=2024-02-01T00:00:00Z&group_by=day');
is_deeply($r->{json}{series}, [], 'an empty window: an empty series');

for my $g ('week', 'DAY', '', 'model;drop') {
    main::bad($::A, "/stats?group_by=" . main::q($g), 'invalid_group_by', "group_by '$g'");
}
--- no_error_log
[error]



=== TEST 8: violations: list, newest first, filters
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request
GET /trueportai-services/api/v1/analytics/violations
--- more_headers eval
"Authorization: Bearer $::member"
--- error_code: 200
--- check
my $j = $main::res->{json};
is_deeply([map { $_->{id} } @{ $j->{items} }], [reverse @::VA],
          "newest first, only A's");
is($j->{total}, 4, 'total 4');
my $v = $j->{items}[3];
is($v->{created_at}, '2025-01-30T10:15:00.000Z', 'created_at');
is($v->{request_id}, 'a-req-1', 'request_id');
is($v->{key_id}, $::K1, 'key_id');
is($v->{rule_id}, $::R1, 'rule_id');
is($v->{rule_name}, 'no pii', 'rule_name');
is($v->{rule_type}, 'pii', 'rule_type');
is($v->{action}, 'block', 'action');
is($v->{detector}, 'email', 'detector');
is($v->{excerpt}, 'a***@example.com', 'excerpt');
my $A = $::A;
my $r = main::count_is($A, "/violations?rule_id=$::R1", 2, 2, 'rule_id R1');
is_deeply([map { $_->{id} } @{ $r->{json}{items} }], [@::VA[1, 0]], '... V2, V1');
main::count_is($A, "/violations?rule_id=$::R2", 2, 2, 'rule_id R2');
main::count_is($A, "/violations?rule_id=$::RB", 0, 0, "B's rule: none");
main::count_is($A, "/violations?key_id=$::K1", 3, 3, 'key_id K1');
main::count_is($A, "/violations?key_id=$::K2", 1, 1, 'key_id K2');
main::count_is($A, '/violations?action=block', 2, 2, 'action block');
main::count_is($A, '/violations?action=redact', 1, 1, 'action redact');
main::count_is($A, '/violations?action=log', 1, 1, 'action log');
$r = main::count_is($A, '/violations?from=2025-02-01T00:00:00Z', 2, 2, 'from');
is_deeply([map { $_->{id} } @{ $r->{json}{items} }], [@::VA[3, 2]], '... V4, V3');
main::count_is($A, '/violations?to=2025-02-01T00:00:00Z', 2, 2, 'to');
main::count_is($A, '/violations?from=2025-01-30T10:15:00Z&to=2025-02-03T08:40:00Z',
               3, 3, 'from inclusive, to exclusive');
main::count_is($A, "/violations?key_id=$::K1&action=block", 2, 2, 'key_id and action');
main::count_is($A, "/violations?rule_id=$::R2&action=redact", 0, 0, 'no match');
main::count_is($A, '/violations?limit=1&offset=1', 1, 4, 'a page of one');
--- no_error_log
[error]



=== TEST 9: violations: detail of one's own, 404 for another tenant's or a non-id
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
"GET /trueportai-services/api/v1/analytics/violations/$::VA[0]"
--- more_headers eval
"Authorization: Bearer $::member"
--- error_code: 200
--- check
my $j = $main::res->{json};
is($j->{id}, $::VA[0], 'id');
is($j->{action}, 'block', 'action');
is($j->{rule_id}, $::R1, 'rule_id');
is($j->{request_id}, 'a-req-1', 'request_id');
my $r = main::get($::A, "/violations/$::VB");
is($r->{status}, 404, "B's violation: 404");
like($r->{body}, qr/"not_found"/, '... not_found');
unlike($r->{body}, qr/b rule|b-req/, "... nothing of B's");
$r = main::get($::B, "/violations/$::VA[0]");
is($r->{status}, 404, "B asking for A's: 404");
$r = main::get($::B, "/violations/$::VB");
is($r->{status}, 200, "B's own: 200");
is($r->{json}{rule_name}, 'b rule', "... B's row");
for my $id ('nope', '12345', substr($::VA[0], 0, 35), $::VA[0] . 'x') {
    $r = main::get($::A, "/violations/$id");
    is($r->{status}, 404, "non-uuid '$id': 404");
}
$r = main::get($::A, '/violations/' . main::uuid());
is($r->{status}, 404, 'unknown id: 404');
--- no_error_log
[error]



=== TEST 10: tenant isolation: B never sees A's rows
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- check
my $B = $::B;
my $r = main::count_is($B, '/logs', 3, 3, 'B logs');
is_deeply(main::ids($r), ['b-req-3', 'b-req-2', 'b-req-1'], "B's rows only");
main::count_is($B, "/logs?key_id=$::K1", 0, 0, "B filtering by A's key");
main::count_is($B, '/logs?model=gpt-4o', 2, 2, 'B model gpt-4o');
main::count_is($B, '/logs?provider=azure', 0, 0, 'B provider azure');
main::count_is($B, '/logs?status=429', 0, 0, 'B status 429');
main::count_is($B, '/logs?from=2025-02-01T00:00:00Z', 2, 2, 'B from');
main::count_is($B, '/logs?offset=3', 0, 3, 'B offset at total');
$r = main::get($B, '/stats?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z');
is_deeply($r->{json}{totals}, {
    requests => 3, errors => 1, input_tokens => 11, output_tokens => 11,
    cached_tokens => 0, reasoning_tokens => 0, total_tokens => 22,
    cost_micro_usd => 10005, unpriced_requests => 0,
    latency_p50_ms => 2, latency_p95_ms => 8100,
}, "B's stats") or diag($r->{body});
$r = main::get($B, "/stats?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z&key_id=$::K1");
is($r->{json}{totals}{requests}, 0, "B's stats for A's key: 0");
$r = main::get($B, '/stats?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z&group_by=key');
is_deeply([map { $_->{key} } @{ $r->{json}{series} }], [$::KB], 'B: only its key');
$r = main::get($B, '/stats?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z&group_by=provider');
is_deeply([map { "$_->{provider}:$_->{requests}" } @{ $r->{json}{series} }],
          ['anthropic:1', 'openai:2'], "B's provider series");
$r = main::count_is($B, '/violations', 1, 1, 'B violations');
is($r->{json}{items}[0]{id}, $::VB, "... B's");
main::count_is($B, "/violations?rule_id=$::R1", 0, 0, "B filtering by A's rule");
main::count_is($B, "/violations?key_id=$::K1", 0, 0, "B filtering by A's key");
# C sees none of A's or B's
main::count_is($::C, '/logs?from=2025-01-30T00:00:00Z', 0, 0, 'C: none of the others');
main::count_is($::C, '/violations', 0, 0, 'C: no violations');
--- no_error_log
[error]



=== TEST 11: roles: viewer 403 everywhere, member and admin 200
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- request eval
[map { "GET /trueportai-services/api/v1/analytics$_" }
     '/logs', '/stats', '/violations', "/violations/$::VA[0]",
     '/logs', '/stats', '/violations', "/violations/$::VA[0]",
     '/logs', '/stats?group_by=day', '/violations', "/violations/$::VA[0]"]
--- more_headers eval
[("Authorization: Bearer $::viewer") x 4,
 ("Authorization: Bearer " . main::member($::A, 'member')) x 4,
 ("Authorization: Bearer $::admin") x 4]
--- error_code eval
[403, 403, 403, 403, 200, 200, 200, 200, 200, 200, 200, 200]
--- response_body_like eval
[('"code":"insufficient_role"') x 4, ('^\{') x 8]
--- no_error_log
[error]



=== TEST 12: 60 requests a minute per user: the 61st is 429 with Retry-After
--- config
    location /trueportai-services/api/ {
        proxy_pass http://trueport_sidecar;
    }
--- check
my @paths = ('/logs', '/stats', '/violations', "/violations/$::VA[0]");
my @st;
for my $i (1 .. 60) {
    push @st, main::get($::A, $paths[$i % 4], $::burst)->{status};
}
is(scalar(grep { $_ == 200 } @st), 60, 'the first 60 in a burst: 200')
    or diag("@st");
my $r = main::get($::A, '/logs', $::burst);
is($r->{status}, 429, 'the 61st: 429');
like($r->{body}, qr/"code":"rate_limited"/, '... rate_limited');
my $ra = $r->{headers}{'retry-after'};
ok(defined $ra && $ra =~ /^\d+$/ && $ra >= 1 && $ra <= 60,
   "... Retry-After between 1 and 60 s") or diag($ra);
$r = main::get($::A, "/violations/$::VA[0]", $::burst);
is($r->{status}, 429, 'every analytics route shares the limit');
$r = main::get($::A, '/logs?limit=abc', $::burst);
is($r->{status}, 429, 'the limit comes before validation');
# another user of the same tenant is not limited
$r = main::get($::A, '/logs', main::member($::A, 'member'));
is($r->{status}, 200, 'another member of the tenant: 200');
# the viewer is refused before the limit counts anything
$r = main::get($::A, '/logs', $::viewer);
is($r->{status}, 403, 'viewer: still 403');
--- no_error_log
[error]
