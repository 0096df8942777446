package Test::TruePort::Policy;
# Set-up shared by the policy tests (t/080, t/081, t/095, t/096): rules
# through the management API, chat bodies of each provider, and what the
# gateway left behind (violation rows, bodies the mock received).
#
#   use Test::TruePort::Policy;
#   policy_rule($tenant, { name => ..., type => ..., config => ..., action => ... });
#   my $r = policy_post($tenant, $rule);        # the API's answer, any status
#   chat_body('anthropic', 'some text');        # one request body
#   violations_of($request_id, 2);              # rows, waiting for the ingester
#   mock_bodies_with('secret');                 # mock requests holding it
use strict;
use warnings;

use Exporter 'import';
use Time::HiRes qw(sleep time);
use Test::TruePort ();
use Test::TruePort::Mock qw(mock_requests);

our @EXPORT = qw(policy_post policy_rule chat_body chat_uri violations_of
                 mock_bodies_with);

our $API = '/trueportai-services/api/v1/policies';


sub policy_post {
    my ($t, $rule) = @_;
    return Test::TruePort::sidecar_api(POST => $API, $rule,
                                       { Authorization => "Bearer $t->{token}" });
}


# a rule that must be created (201), or the file dies
sub policy_rule {
    my ($t, $rule) = @_;
    my $r = policy_post($t, $rule);
    die "rule: $r->{status} $r->{body}\n" unless $r->{status} == 201;
    return $r->{json};
}


my %uri = (
    openai => '/trueportai-services/openai/v1/chat/completions',
    anthropic => '/trueportai-services/anthropic/v1/messages',
    google => '/trueportai-services/google/v1beta/models/gemini-2.0-flash:generateContent',
);

sub chat_uri { $uri{$_[0]} }


# a one-message request of the provider (openai, anthropic, google) with
# $text as the user's
sub chat_body {
    my ($p, $text) = @_;
    my $t = Test::TruePort::json_encode($text);
    return {
        openai => qq({"model":"gpt-4o-mini","messages":[{"role":"user","content":$t}]}),
        anthropic => qq({"model":"claude-3-5-haiku-latest","max_tokens":200,"messages":[{"role":"user","content":[{"type":"text","text":$t}]}]}),
        google => qq({"contents":[{"role":"user","parts":[{"text":$t}]}]}),
    }->{$p};
}


# the violations rows of a request id, by rule name (the ingester polls
# the spool: waits up to 6 s for $want rows, 1 by default)
sub violations_of {
    my ($rid, $want) = @_;
    my $deadline = time + 6;
    my $rows;
    while (1) {
        $rows = Test::TruePort::dbh()->selectall_arrayref(
            'SELECT * FROM violations WHERE request_id = ? ORDER BY rule_name',
            { Slice => {} }, $rid);
        last if @$rows >= ($want // 1) or time > $deadline;
        sleep 0.1;
    }
    return $rows;
}


# the requests the mock received whose body holds $s
sub mock_bodies_with {
    my ($s) = @_;
    return grep { index($_->{body}, $s) >= 0 } mock_requests();
}

1;
