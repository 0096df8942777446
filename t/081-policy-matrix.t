# Policy enforcement through nginx, as a matrix (issue 6): every rule type
# (regex, keywords, pii, model, limits) with every action it takes (block,
# redact, log; model and limits rules cannot redact, the API refuses that
# with 422, see t/060) on every provider format (OpenAI, Azure OpenAI,
# Anthropic, Gemini); secrets split over content parts; Unicode and JSON
# escapes around and inside a secret; the violations through the analytics
# API (filters, the masked excerpt, tenant isolation); a rule changed with
# PUT takes effect within a second; a chunked body; rule scopes. Model
# rules match what the provider serves: Gemini's model and Azure's
# deployment, from the URL.
use lib 't/lib';
use Test::TruePort;
use Test::TruePort::Mock;
use Test::TruePort::Gateway;
use Test::TruePort::Policy;
use Encode qw(encode_utf8 decode_utf8);
use File::Path qw(make_path);
use Time::HiRes qw(sleep time);

our $SPOOL = work_dir() . '/spool';
make_path($SPOOL, { mode => 0755 });

use_sidecar(env => { TRUEPORT_SPOOL_DIR => $SPOOL });
gw_setup(policy => 1);

our $P = '/trueportai-services/api/v1/policies';
our $A = '/trueportai-services/api/v1/analytics/violations';

our $T = gw_tenant();
our $K = gw_key($T, rpm => 10000);
our $K2 = gw_key($T, rpm => 1000);
# the masked excerpts are checked here: the tenant keeps them (log_prompts)
gw_config($T, 'log_prompts', JSON::PP::true());
our $O = gw_tenant();                      # another tenant, no rules
our $OK = gw_key($O, rpm => 1000);

# one rule per type and action; each is triggered by its own text, so a
# request hits exactly the rule it is about
our %R;
$R{'regex/block'} = policy_rule($T, { name => 'rx block', type => 'regex',
    config => { patterns => ['\bRXB-\d{4}\b'] }, action => 'block' });
$R{'regex/redact'} = policy_rule($T, { name => 'rx redact', type => 'regex',
    config => { patterns => ['RXR-\d{4}'] }, action => 'redact' });
$R{'regex/log'} = policy_rule($T, { name => 'rx log', type => 'regex',
    config => { patterns => ['\bRXL-\d{4}\b'] }, action => 'log' });
$R{'keywords/block'} = policy_rule($T, { name => 'kw block', type => 'keywords',
    config => { keywords => ['operation nightjar', "cr\x{e8}me br\x{fb}l\x{e9}e"] },
    action => 'block' });
$R{'keywords/redact'} = policy_rule($T, { name => 'kw redact', type => 'keywords',
    config => { keywords => ['bluefin tuna'] }, action => 'redact' });
$R{'keywords/log'} = policy_rule($T, { name => 'kw log', type => 'keywords',
    config => { keywords => ['kestrel'] }, action => 'log' });
$R{'pii/block'} = policy_rule($T, { name => 'pii block', type => 'pii',
    config => { detectors => ['credit_card'] }, action => 'block' });
$R{'pii/redact'} = policy_rule($T, { name => 'pii redact', type => 'pii',
    config => { detectors => ['email'] }, action => 'redact' });
$R{'pii/log'} = policy_rule($T, { name => 'pii log', type => 'pii',
    config => { detectors => ['ipv4'] }, action => 'log' });
$R{'model/block'} = policy_rule($T, { name => 'model block', type => 'model',
    config => { deny => ['forbidden-model*'] }, action => 'block' });
$R{'model/log'} = policy_rule($T, { name => 'model log', type => 'model',
    config => { deny => ['logged-model*'] }, action => 'log' });
$R{'limits/block'} = policy_rule($T, { name => 'limits block', type => 'limits',
    config => { max_prompt_chars => 3000 }, action => 'block' });
$R{'limits/log'} = policy_rule($T, { name => 'limits log', type => 'limits',
    config => { max_output_tokens => 4000 }, action => 'log' });

gw_env(
    KEY => $K->{key},
    GW_HTTP_SPOOL => gw_http_config()
                     . "    trueport_spool $SPOOL max_size=1m max_age=1s;\n",
);

our @PROV = qw(openai azure anthropic google);

sub uri_of {
    my ($p, $model) = @_;
    my $dep = $model // 'gpt4o';
    $model //= 'gemini-2.0-flash';
    return {
        openai => '/trueportai-services/openai/v1/chat/completions',
        azure => "/trueportai-services/azure/res1/$dep/chat/completions"
                 . '?api-version=2024-06-01',
        anthropic => '/trueportai-services/anthropic/v1/messages',
        google => "/trueportai-services/google/v1beta/models/$model"
                  . ':generateContent',
    }->{$p};
}

# The request body of a provider, as bytes; $t is the text (characters),
# or with raw => 1 the JSON string literal itself, quotes included.
sub body_of {
    my ($p, $t, %o) = @_;
    $t = json_encode($t) unless $o{raw};
    my $model = $o{model} // 'gpt-4o-mini';
    my $max = $o{max_tokens} // 200;
    return {
        openai => qq({"model":"$model","max_tokens":$max,"messages":[{"role":"user","content":$t}]}),
        azure => qq({"model":"$model","max_tokens":$max,"messages":[{"role":"user","content":$t}]}),
        anthropic => qq({"model":"$model","max_tokens":$max,"messages":[{"role":"user","content":[{"type":"text","text":$t}]}]}),
        google => qq({"contents":[{"role":"user","parts":[{"text":$t}]}],"generationConfig":{"maxOutputTokens":$max}}),
    }->{$p};
}

# the prompt text of a body the mock received (decoded JSON)
sub text_of {
    my ($p, $j) = @_;
    return $p eq 'google' ? $j->{contents}[0]{parts}[0]{text}
         : $p eq 'anthropic' ? $j->{messages}[0]{content}[0]{text}
         : $j->{messages}[0]{content};
}

# what each rule is tested with: [rule, text, body options, secret]
our %CASE = (
    'regex/block' => ['see ticket RXB-1234 now', {}, 'RXB-1234'],
    'regex/redact' => ['see ticket RXR-5678 now', {}, 'RXR-5678'],
    'regex/log' => ['see ticket RXL-9012 now', {}, undef],
    'keywords/block' => ['about Operation Nightjar, today', {}, 'Nightjar'],
    'keywords/redact' => ['we sell Bluefin Tuna here', {}, 'Bluefin Tuna'],
    'keywords/log' => ['a kestrel flew by', {}, undef],
    'pii/block' => ['card 4111 1111 1111 1111 exp 12/29', {},
                    '4111 1111 1111 1111'],
    'pii/redact' => ['write to jane.roe@example.org soon', {},
                     'jane.roe@example.org'],
    'pii/log' => ['the host 10.20.30.40 is down', {}, undef],
    'model/block' => ['hello there', { model => 'forbidden-model-1' }, undef],
    'model/log' => ['hello there', { model => 'logged-model-1' }, undef],
    'limits/block' => ['a ' x 1600, {}, undef],
    'limits/log' => ['hello there', { max_tokens => 5000 }, undef],
);

our %MARK = ('regex/redact' => '[REDACTED:regex]',
             'keywords/redact' => '[REDACTED:keyword]',
             'pii/redact' => '[REDACTED:email]');

# the requests of one action: one per rule of that action and provider, in
# @main::cases as {p, rule, text, body}
our @cases;

sub matrix {
    my ($action) = @_;
    @cases = ();
    for my $rule (sort grep { m{/$action$} } keys %CASE) {
        my ($text, $o) = @{ $CASE{$rule} };
        for my $p (@PROV) {
            push @cases, { p => $p, rule => $rule, text => $text,
                           body => body_of($p, $text, %$o),
                           uri => uri_of($p, $o->{model}) };
        }
    }
    return [ map { "POST $_->{uri}\n$_->{body}" } @cases ];
}

# requests of hand-made bodies: [provider, body bytes, model?]
sub raw_requests {
    @cases = map { { p => $_->[0], body => $_->[1] } } @_;
    return [ map { "POST " . uri_of($_->[0], $_->[2]) . "\n$_->[1]" } @_ ];
}

# the violation rows of request ids, once every id has at least one (the
# ingester polls the spool)
sub rows_of {
    my @rids = @_;
    my $deadline = time + 8;
    my %by;
    while (1) {
        %by = ();
        my $rows = dbh()->selectall_arrayref(
            'SELECT * FROM violations WHERE request_id = ANY(?)',
            { Slice => {} }, \@rids);
        push @{ $by{$_->{request_id}} }, $_ for @$rows;
        last if @rids == grep { $by{$_} } @rids or time > $deadline;
        sleep 0.1;
    }
    return \%by;
}

sub rid { $_[0]{headers}{'x-trueport-request-id'} // '' }

# the provider's 403 shape, with the violation id
sub shape_ok {
    my ($p, $res, $l) = @_;
    my $j = $res->{json};
    my $msg;
    if ($p eq 'anthropic') {
        ok($j && $j->{type} eq 'error'
           && $j->{error}{type} eq 'permission_error', "$l: anthropic shape");
        $msg = $j && $j->{error}{message};
    } elsif ($p eq 'google') {
        ok($j && $j->{error}{code} == 403
           && $j->{error}{status} eq 'PERMISSION_DENIED'
           && $j->{error}{details}[0]{reason} eq 'POLICY_VIOLATION',
           "$l: gemini shape");
        $msg = $j && $j->{error}{message};
    } else {
        ok($j && $j->{error}{code} eq 'policy_violation'
           && $j->{error}{type} eq 'invalid_request_error',
           "$l: openai shape");
        $msg = $j && $j->{error}{message};
    }
    my ($id) = ($msg // '') =~ /violation ([0-9a-f-]{36})$/;
    ok($id, "$l: the violation id in the message") or diag($res->{body});
    is($res->{headers}{'x-trueport-violation-id'}, $id, "$l: and the header");
    return $id;
}

# the body the mock received, as bytes
sub bytes { encode_utf8($_[0]{body}) }

sub wait_status {
    my ($want, $key, $text) = @_;
    my $t0 = time;
    my $r;
    do {
        sleep 0.05;
        $r = http_request(port => server_port(), method => 'POST',
                          uri => uri_of('openai'),
                          body => body_of('openai', $text),
                          headers => { 'x-api-key' => $key,
                                       'Content-Type' => 'application/json' });
    } until $r->{status} == $want || time - $t0 > 3;
    return ($r, time - $t0);
}

sub analytics {
    my ($t, $path) = @_;
    return sidecar_api(GET => "$A$path", undef,
                       { Authorization => "Bearer $t->{token}" });
}

our (%blocked_ids, @secrets);

run_tests();

__DATA__

=== TEST 1: block: every type on every provider is a 403 in the provider's shape, nothing upstream
--- init
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::matrix('block')
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[(403) x 20]
--- check
is(scalar(mock_requests()), 0, 'nothing reached the provider');
my $rows = main::rows_of(map { main::rid($_) } @main::responses);
for my $i (0 .. $#main::cases) {
    my $c = $main::cases[$i];
    my $res = $main::responses[$i];
    my $l = "$c->{rule} $c->{p}";
    my $id = main::shape_ok($c->{p}, $res, $l);
    my @r = @{ $rows->{main::rid($res)} || [] };
    is(scalar @r, 1, "$l: one violation row") or next;
    my $v = $r[0];
    is($v->{id}, $id, "$l: the row of the 403");
    is("$v->{rule_type}/$v->{action}", $c->{rule}, "$l: type and action");
    is($v->{rule_id}, $main::R{$c->{rule}}{id}, "$l: rule id");
    is($v->{provider}, $c->{p}, "$l: provider");
    is($v->{key_id}, $main::K->{id}, "$l: key");
    my $s = $main::CASE{$c->{rule}}[2];
    ok(index(lc $v->{excerpt}, lc $s) < 0, "$l: masked excerpt")
        or diag($v->{excerpt}) if defined $s;
    $main::blocked_ids{"$c->{rule} $c->{p}"} = $id;
}
--- no_error_log
[error]
[alert]



=== TEST 2: redact: the provider gets valid JSON with the marker in place, a new Content-Length
--- init
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::matrix('redact')
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[(200) x 12]
--- check
my @got = mock_requests();
is(scalar @got, 12, 'every request reached the provider');
my $rows = main::rows_of(map { main::rid($_) } @main::responses);
for my $i (0 .. $#main::cases) {
    my $c = $main::cases[$i];
    my $m = $got[$i] or next;
    my $l = "$c->{rule} $c->{p}";
    my $b = main::bytes($m);
    my ($text, $o, $s) = @{ $main::CASE{$c->{rule}} };
    push @main::secrets, $s;
    ok(json_decode($b), "$l: valid JSON upstream") or diag($b);
    ok(index($b, $s) < 0, "$l: not the secret");
    (my $want = $text) =~ s/\Q$s\E/$main::MARK{$c->{rule}}/;
    is($b, main::body_of($c->{p}, $want, %$o),
       "$l: the body with the marker, every other byte as sent");
    is($m->{headers}{'content-length'}, length $b, "$l: Content-Length");
    my @r = @{ $rows->{main::rid($main::responses[$i])} || [] };
    ok(@r == 1 && "$r[0]{rule_type}/$r[0]{action}" eq $c->{rule}
       && $r[0]{provider} eq $c->{p}, "$l: one redact row");
}
--- no_error_log
[error]
[alert]



=== TEST 3: log: the provider gets the body byte for byte, a log row
--- init
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::matrix('log')
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[(200) x 20]
--- check
my @got = mock_requests();
is(scalar @got, 20, 'every request reached the provider');
my $rows = main::rows_of(map { main::rid($_) } @main::responses);
for my $i (0 .. $#main::cases) {
    my $c = $main::cases[$i];
    my $l = "$c->{rule} $c->{p}";
    is(main::bytes($got[$i] // {}), $c->{body}, "$l: body unchanged");
    is($got[$i]{headers}{'content-length'}, length $c->{body},
       "$l: Content-Length unchanged");
    my @r = @{ $rows->{main::rid($main::responses[$i])} || [] };
    ok(@r == 1 && "$r[0]{rule_type}/$r[0]{action}" eq $c->{rule}
       && $r[0]{rule_id} eq $main::R{$c->{rule}}{id}, "$l: one log row")
        or diag(explain(\@r));
}
--- no_error_log
[error]
[alert]



=== TEST 4: a secret split over content parts is one text: found, and each part's piece redacted
--- init
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::raw_requests(
 # OpenAI content parts: an email over two parts, redacted in both
 ['openai', '{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"mail jane.r"},{"type":"text","text":"oe@example.org today"}]}]}'],
 # Azure, the same with a block keyword
 ['azure', '{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"about operation night"},{"type":"text","text":"jar"}]}]}'],
 # two Anthropic text blocks: a card number over both
 ['anthropic', '{"model":"claude-3-5-haiku-latest","max_tokens":100,"messages":[{"role":"user","content":[{"type":"text","text":"pay with 4111 1111 "},{"type":"text","text":"1111 1111 please"}]}]}'],
 # two Gemini parts: a regex match over both
 ['google', '{"contents":[{"role":"user","parts":[{"text":"ticket RXB-"},{"text":"4321"}]}]}'],
 # two messages are two texts: a keyword across them is no match
 ['openai', '{"model":"gpt-4o","messages":[{"role":"user","content":"operation"},{"role":"user","content":"nightjar"}]}'],
)
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[200, 403, 403, 403, 200]
--- check
my @got = mock_requests();
is(scalar @got, 2, 'the two 200s reached the provider');
my $j = json_decode(main::bytes($got[0]));
ok($j, 'valid JSON upstream');
is_deeply([map { $_->{text} } @{ $j->{messages}[0]{content} }],
          ['mail [REDACTED:email]', '[REDACTED:email] today'],
          'each part lost its piece of the address');
is(main::bytes($got[1]), $main::cases[4]{body}, 'two messages: unchanged');
like($main::responses[1]{body}, qr/'kw block' \(keyword\)/, 'azure: keyword');
like($main::responses[2]{body}, qr/'pii block' \(credit_card\)/,
     'anthropic: card');
like($main::responses[3]{body}, qr/'rx block' \(regex\)/, 'gemini: regex');
--- no_error_log
[error]
[alert]



=== TEST 5: Unicode and JSON escapes around and inside secrets
--- init
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::raw_requests(
 # 0: raw UTF-8 (accents, CJK, an emoji) and \" \\ \n \t escapes around an
 # email to redact
 ['openai', main::body_of('openai', "Gr\x{fc}\x{df}e \x{1f44b} \x{65e5}\x{672c} \"jane.roe\@example.org\"\n\\path\tend")],
 # 1: the same text written with \u escapes, a surrogate pair, and the
 # address itself escaped (\u0040, \u002e)
 ['azure', main::body_of('azure', '"Gr\u00fc\u00dfe \ud83d\udc4b \u65e5\u672c \"jane.roe\u0040example\u002eorg\"\n\\\\path\tend"', raw => 1)],
 # 2: a regex match between emoji and escaped quotes (Anthropic)
 ['anthropic', main::body_of('anthropic', '"\ud83d\ude00RXR-1234\ud83d\ude00 say \"RXR-5678\" \\\\ x"', raw => 1)],
 # 3: a block keyword written with escapes (Gemini)
 ['google', main::body_of('google', '"about operation nightj\u0061r\u0021"', raw => 1)],
 # 4: a keyword with Latin-1 letters in another case, as UTF-8 (OpenAI)
 ['openai', main::body_of('openai', "a CR\x{c8}ME BR\x{db}L\x{c9}E for two")],
 # 5: a card number with escaped digits and a non-breaking space around it
 ['azure', main::body_of('azure', '"card\u00a04111\u0020111\u0031 1111 1111\u00a0ok"', raw => 1)],
 # 6: a keyword to redact next to multi-byte letters, as UTF-8 (Gemini)
 ['google', main::body_of('google', "\x{c5}ngstr\x{f6}m: bluefin tuna \x{2014} \x{fc}ber")],
)
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[200, 200, 200, 403, 403, 403, 200]
--- check
my @got = mock_requests();
is(scalar @got, 4, 'four requests reached the provider');
my @want = (
    ['openai', "Gr\x{fc}\x{df}e \x{1f44b} \x{65e5}\x{672c} \"[REDACTED:email]\"\n\\path\tend"],
    ['azure', "Gr\x{fc}\x{df}e \x{1f44b} \x{65e5}\x{672c} \"[REDACTED:email]\"\n\\path\tend"],
    ['anthropic', "\x{1f600}[REDACTED:regex]\x{1f600} say \"[REDACTED:regex]\" \\ x"],
    ['google', "\x{c5}ngstr\x{f6}m: [REDACTED:keyword] \x{2014} \x{fc}ber"],
);
for my $i (0 .. 3) {
    my ($p, $text) = @{ $want[$i] };
    my $m = $got[$i] or next;
    my $b = main::bytes($m);
    my $j = json_decode($b);
    ok($j, "$i $p: valid JSON upstream") or diag($b) or next;
    is(main::text_of($p, $j), $text, "$i $p: the text, redacted");
    unlike($b, qr/jane|u0040example|RXR-\d|bluefin/i, "$i $p: no secret");
    is($m->{headers}{'content-length'}, length $b, "$i $p: Content-Length");
}
like($main::responses[3]{body}, qr/'kw block' \(keyword\)/, 'escaped keyword');
like($main::responses[4]{body}, qr/'kw block' \(keyword\)/, 'Latin-1 case');
like($main::responses[5]{body}, qr/'pii block' \(credit_card\)/, 'escaped card');
--- no_error_log
[error]
[alert]



=== TEST 6: the violations through the analytics API: filters, the masked excerpt, tenant isolation
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
"POST " . main::uri_of('openai') . "\n" . main::body_of('openai', 'a kestrel and RXR-1111')
--- more_headers
x-api-key: $TEST_NGINX_KEY
Content-Type: application/json
--- error_code: 200
--- check
# one more request, with the tenant's second key: a redact row of K2
my $r2 = http_request(port => server_port(), method => 'POST',
    uri => main::uri_of('openai'),
    body => main::body_of('openai', 'write to k2@example.org'),
    headers => { 'x-api-key' => $main::K2->{key},
                 'Content-Type' => 'application/json' });
is($r2->{status}, 200, 'the second key: 200');
main::rows_of(main::rid($main::res), main::rid($r2));

my $id = $main::blocked_ids{'pii/block anthropic'};
my $g = main::analytics($main::T, "/$id");
is($g->{status}, 200, 'GET violation by the id of the 403');
my $v = $g->{json} || {};
is($v->{id}, $id, 'its id');
is($v->{rule_id}, $main::R{'pii/block'}{id}, 'its rule');
is("$v->{action}/$v->{detector}/$v->{provider}", 'block/credit_card/anthropic',
   'action, detector, provider');
is($v->{key_id}, $main::K->{id}, 'its key');
like($v->{excerpt}, qr/^4111\*+1111$/, 'masked excerpt');

my $l = main::analytics($main::T,
    "?rule_id=$main::R{'pii/block'}{id}&action=block&limit=200");
is($l->{status}, 200, 'list by rule_id and action');
my @it = @{ $l->{json}{items} || [] };
# the matrix (4 providers), the split card, the escaped card
is($l->{json}{total}, 6, 'the card rule blocked six requests');
is(scalar(grep { $_->{rule_id} eq $main::R{'pii/block'}{id}
                 && $_->{action} eq 'block' } @it), 6, 'all of that rule');
ok((grep { $_->{id} eq $id } @it), 'the 403 one among them');

$l = main::analytics($main::T, "?key_id=$main::K2->{id}");
is($l->{json}{total}, 1, 'by key_id: the second key\'s one row');
ok($l->{json}{items}[0]{key_id} eq $main::K2->{id}
   && $l->{json}{items}[0]{action} eq 'redact', 'its key and action');

$l = main::analytics($main::T, "?action=redact&limit=200");
my @red = @{ $l->{json}{items} || [] };
ok(@red >= 12 && !grep({ $_->{action} ne 'redact' } @red),
   'by action: redactions only') or diag(scalar @red);

$l = main::analytics($main::T, "?rule_id=$main::R{'keywords/log'}{id}");
is($l->{json}{total}, 5, 'the log keyword: the matrix and this request');

# no excerpt anywhere holds a secret the requests sent
$l = main::analytics($main::T, '?limit=200');
my @all = @{ $l->{json}{items} || [] };
ok($l->{json}{total} >= 60, "every violation listed ($l->{json}{total})");
my @raw = (@main::secrets, '4111 1111 1111 1111', '4111111111111111',
           'jane.roe', 'example.org', 'k2@', 'RXB-1234', 'RXR-1111',
           'nightjar', 'bluefin', "cr\x{e8}me");
my @leak = grep { my $e = lc $_->{excerpt};
                  grep { index($e, lc $_) >= 0 } @raw } @all;
is(scalar @leak, 0, 'no excerpt holds a secret') or diag(explain(\@leak));

# another tenant sees none of it
my $o = main::analytics($main::O, "/$id");
is($o->{status}, 404, 'another tenant: 404 on the id');
$o = main::analytics($main::O, '');
is($o->{json}{total}, 0, 'another tenant: an empty list');
$o = main::analytics($main::O, "?rule_id=$main::R{'pii/block'}{id}");
is($o->{json}{total}, 0, 'another tenant: nothing by the rule id either');
--- no_error_log
[error]



=== TEST 7: Azure: model rules match the deployment in the URL, which Azure serves
--- init
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
main::raw_requests(
 ['azure', '{"messages":[{"role":"user","content":"hi"}]}', 'forbidden-model-9'],
 ['azure', '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}', 'forbidden-model-9'],
 ['azure', '{"model":"forbidden-model-1","messages":[{"role":"user","content":"hi"}]}', 'gpt4o'],
 ['azure', '{"messages":[{"role":"user","content":"hi"}]}', 'logged-model-3'],
)
--- more_headers
x-api-key: $TEST_NGINX_KEY
Content-Type: application/json
--- error_code eval
[403, 403, 200, 200]
--- check
like($main::responses[$_]{body}, qr/'model block' \(model\)/,
     "request $_: the deployment is denied") for 0, 1;
my @got = mock_requests();
is(scalar @got, 2, 'two requests reached the provider');
is($got[0]{path}, '/openai/deployments/gpt4o/chat/completions',
   'a denied model name in the body is only a claim');
my $rows = main::rows_of(map { main::rid($_) } @main::responses[1 .. 3]);
is($rows->{main::rid($main::responses[1])}[0]{excerpt}, 'forbidden-model-9',
   'the excerpt names the deployment');
ok(!$rows->{main::rid($main::responses[2])}, 'no row for the allowed one');
my ($v) = @{ $rows->{main::rid($main::responses[3])} || [] };
ok($v && "$v->{rule_type}/$v->{action}" eq 'model/log'
   && $v->{excerpt} eq 'logged-model-3', 'a log row for the logged deployment');
--- no_error_log
[error]
[alert]



=== TEST 8: a rule changed with PUT (log -> block, then disabled) takes effect within a second
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
"POST " . main::uri_of('openai') . "\n" . main::body_of('openai', 'a kestrel flew by')
--- more_headers
x-api-key: $TEST_NGINX_KEY
Content-Type: application/json
--- error_code: 200
--- check
my $rule = $main::R{'keywords/log'};
my %upd = (name => 'kw log', type => 'keywords',
           config => { keywords => ['kestrel'] }, action => 'block');
my $u = sidecar_api(PUT => "$main::P/$rule->{id}", \%upd,
                    { Authorization => "Bearer $main::T->{token}" });
is($u->{status}, 200, 'PUT: now a block rule');
my ($r, $took) = main::wait_status(403, $main::K->{key}, 'a kestrel flew by');
is($r->{status}, 403, 'blocked after the change');
ok($took <= 1.2, sprintf('within a second (%.2f s)', $took));
$u = sidecar_api(PUT => "$main::P/$rule->{id}", { %upd, enabled => JSON::PP::false() },
                 { Authorization => "Bearer $main::T->{token}" });
is($u->{status}, 200, 'PUT: disabled');
($r, $took) = main::wait_status(200, $main::K->{key}, 'a kestrel flew by');
is($r->{status}, 200, 'let through once disabled');
ok($took <= 1.2, sprintf('within a second (%.2f s)', $took));
--- no_error_log
[error]



=== TEST 9: a chunked request body: redacted, sent with a Content-Length; blocked
--- init
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP_SPOOL
--- config: $TEST_NGINX_GW
--- request eval
[ map { my $b = main::body_of('openai', $_);
        my $h = int(length($b) / 2);
        "POST " . main::uri_of('openai') . "\n"
        # (the harness drops one trailing "\n" of a request)
        . sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", $h, substr($b, 0, $h),
                  length($b) - $h, substr($b, $h)) . "\n" }
  'chunked to jane.roe@example.org, thanks', 'chunked operation nightjar' ]
--- more_headers
x-api-key: $TEST_NGINX_KEY
Content-Type: application/json
Transfer-Encoding: chunked
--- error_code eval
[200, 403]
--- check
my @got = mock_requests();
is(scalar @got, 1, 'only the redacted one reached the provider');
my $m = $got[0] || {};
my $b = main::bytes($m);
is($b, main::body_of('openai', 'chunked to [REDACTED:email], thanks'),
   'the redacted body');
is($m->{headers}{'content-length'}, length $b, 'Content-Length');
ok(!exists $m->{headers}{'transfer-encoding'}, 'not chunked upstream');
--- no_error_log
[error]
[alert]



=== TEST 10: a rule's scope (providers, key ids) decides where it applies
--- init
main::policy_rule($main::T, { name => 'anthropic only', type => 'keywords',
    config => { keywords => ['scopedword'] }, action => 'block',
    scope => { providers => ['anthropic'] } });
main::policy_rule($main::T, { name => 'second key only', type => 'keywords',
    config => { keywords => ['keyscoped'] }, action => 'block',
    scope => { key_ids => [$main::K2->{id}] } });
main::policy_rule($main::T, { name => 'staging only', type => 'keywords',
    config => { keywords => ['envscoped'] }, action => 'block',
    scope => { envs => ['staging'] } });
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[ "POST " . main::uri_of('openai') . "\n" . main::body_of('openai', 'a scopedword'),
  "POST " . main::uri_of('anthropic') . "\n" . main::body_of('anthropic', 'a scopedword'),
  "POST " . main::uri_of('openai') . "\n" . main::body_of('openai', 'a keyscoped'),
  "POST " . main::uri_of('openai') . "\n" . main::body_of('openai', 'a keyscoped'),
  "POST " . main::uri_of('google') . "\n" . main::body_of('google', 'an envscoped') ]
--- more_headers eval
[ map { "x-api-key: $_\nanthropic-version: 2023-06-01\nContent-Type: application/json" }
  $main::K->{key}, $main::K->{key}, $main::K->{key}, $main::K2->{key},
  $main::K->{key} ]
--- error_code eval
[200, 403, 200, 403, 200]
--- response_body_like eval
[qr/./, qr/'anthropic only'/, qr/./, qr/'second key only'/, qr/./]
--- check
is(scalar(mock_requests()), 3, 'the three others reached the provider');
--- no_error_log
[error]



=== TEST 11: other places a prompt hides: system prompts, tool results, embeddings; lone surrogates, bad UTF-8
--- init
mock_clear();
--- http_config: $TEST_NGINX_GW_HTTP
--- config: $TEST_NGINX_GW
--- request eval
[ "POST " . main::uri_of('anthropic') . "\n"
  . '{"model":"claude-3-5-haiku-latest","max_tokens":50,"system":"reply to ops@example.org","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"found jane.roe@example.org"}]}]}',
  "POST /trueportai-services/openai/v1/embeddings\n"
  . '{"model":"text-embedding-3-small","input":["plain","to jane.roe@example.org"]}',
  "POST " . main::uri_of('openai') . "\n"
  . main::body_of('openai', '"\ud800 jane.roe@example.org \udc00"', raw => 1),
  "POST " . main::uri_of('openai') . "\n"
  . main::body_of('openai', "\xff\xfe jane.roe\@example.org", raw => 0) =~ s/\xc3\xbf\xc3\xbe/\xff\xfe/r ]
--- more_headers
x-api-key: $TEST_NGINX_KEY
anthropic-version: 2023-06-01
Content-Type: application/json
--- error_code eval
[200, 200, 200, 400]
--- response_body_like eval
[qr/./, qr/./, qr/./, qr/"code":"invalid_request_body"/]
--- check
my @got = mock_requests();
is(scalar @got, 3, 'the bad UTF-8 one did not reach the provider');
my @j = map { json_decode(main::bytes($_)) } @got;
ok(@j == 3 && !grep({ !$_ } @j), 'valid JSON upstream');
is($j[0]{system}, 'reply to [REDACTED:email]', 'anthropic: the system prompt');
is($j[0]{messages}[0]{content}[0]{content}, 'found [REDACTED:email]',
   'anthropic: the tool result');
is_deeply($j[1]{input}, ['plain', 'to [REDACTED:email]'], 'embeddings input');
is($j[2]{messages}[0]{content}, "\x{fffd} [REDACTED:email] \x{fffd}",
   'lone surrogates become U+FFFD in a redacted string');
--- no_error_log
[error]
