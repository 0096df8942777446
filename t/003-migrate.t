# The migration runner: applies every migrations/NNNN_*.sql in order into an
# empty database, records each in schema_migrations, changes nothing when run
# again, refuses a broken migration without half-applying it, and
# create-admin makes (then promotes) a platform admin.
use strict;
use warnings;
use Test::More;
use DBI;
use File::Temp qw(tempdir);

plan skip_all => 'no test Postgres (run through make test)'
    unless $ENV{TP_PG_HOST};

my $root = $ENV{TP_ROOT};
my $db   = "tp_migrate_$$";
my $dsn_libpq = "host=$ENV{TP_PG_HOST} port=$ENV{TP_PG_PORT} user=$ENV{TP_PG_USER}";
my $admin = DBI->connect("dbi:Pg:host=$ENV{TP_PG_HOST};port=$ENV{TP_PG_PORT};dbname=postgres",
                         $ENV{TP_PG_USER}, '', { RaiseError => 1, PrintError => 0 });
$admin->do("CREATE DATABASE $db");

my %env = (
    TRUEPORT_DATABASE_URL => "$dsn_libpq dbname=$db",
    TRUEPORT_JWT_SECRET   => 'migrate-test-secret-0123456789abcdef0123',
    TRUEPORT_MASTER_KEY   => '0' x 64,
    TRUEPORT_MIGRATIONS   => "$root/migrations",
    TRUEPORT_SCRYPT_N     => 1024,
    TRUEPORT_LOG_LEVEL    => 'warn',
);

sub sidecar {
    my ($extra, $stdin, @args) = @_;
    local %ENV = (%ENV, %env, %{ $extra || {} });
    my $cmd = join ' ', map { "'$_'" } $ENV{TP_SIDECAR}, @args;
    my $out = defined $stdin ? `printf '%s\\n' '$stdin' | $cmd 2>&1` : `$cmd 2>&1`;
    return ($? >> 8, $out);
}

my $dbh = DBI->connect("dbi:Pg:host=$ENV{TP_PG_HOST};port=$ENV{TP_PG_PORT};dbname=$db",
                       $ENV{TP_PG_USER}, '', { RaiseError => 1, PrintError => 0 });

sub schema_snapshot {
    my $cols = $dbh->selectall_arrayref(q{
        SELECT table_name, column_name, data_type, is_nullable, column_default
          FROM information_schema.columns WHERE table_schema = 'public'
         ORDER BY 1, 2});
    my $idx = $dbh->selectall_arrayref(q{
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
         ORDER BY 1});
    return join "\n", map { join '|', map { $_ // 'NULL' } @$_ } @$cols, @$idx;
}

my @files = sort map { m{/(\d{4}_[^/]+\.sql)$} ? $1 : () }
            glob("$root/migrations/*.sql");
ok(@files >= 1, 'there are migrations');

my ($rc, $out) = sidecar(undef, undef, 'migrate');
is($rc, 0, 'first migrate exits 0') or diag $out;
like($out, qr/applied ${\ scalar @files} migration/, 'first run applies every file');

my $rows = $dbh->selectall_arrayref(
    'SELECT version, name FROM schema_migrations ORDER BY version');
is_deeply([map { $_->[1] } @$rows], \@files, 'each file recorded, in order');

my $before = schema_snapshot();
my ($count_before) = $dbh->selectrow_array('SELECT count(*) FROM schema_migrations');

($rc, $out) = sidecar(undef, undef, 'migrate');
is($rc, 0, 'second migrate exits 0');
like($out, qr/schema up to date/, 'second run says up to date');
is(schema_snapshot(), $before, 'second run changes no table, column or index');
my ($count_after) = $dbh->selectrow_array('SELECT count(*) FROM schema_migrations');
is($count_after, $count_before, 'second run records nothing');

# a broken migration rolls back entirely and is not recorded
my $dir = tempdir(CLEANUP => 1);
system('cp', glob("$root/migrations/*.sql"), $dir) == 0 or die;
open my $fh, '>', "$dir/9998_good_then_bad.sql" or die;
print $fh "CREATE TABLE half_applied (id int);\nSELECT no_such_function();\n";
close $fh;
($rc, $out) = sidecar({ TRUEPORT_MIGRATIONS => $dir }, undef, 'migrate');
isnt($rc, 0, 'a failing migration exits non-zero');
like($out, qr/migration failed/, '... and says so');
my ($half) = $dbh->selectrow_array("SELECT to_regclass('half_applied')");
ok(!defined $half, '... and nothing of it stays');
my ($rec) = $dbh->selectrow_array('SELECT count(*) FROM schema_migrations WHERE version = 9998');
is($rec, 0, '... and it is not recorded');

# bad configuration: refused with a clear message, before touching anything
($rc, $out) = sidecar({ TRUEPORT_JWT_SECRET => 'short' }, undef, 'migrate');
is($rc, 2, 'bad config exits 2');
like($out, qr/configuration error: TRUEPORT_JWT_SECRET/, 'bad config names the setting');

($rc, $out) = sidecar({ TRUEPORT_DATABASE_URL => 'host=/nonexistent dbname=x' }, undef, 'migrate');
isnt($rc, 0, 'unreachable database exits non-zero');
like($out, qr/cannot connect/, '... with a clear message');

# create-admin
($rc, $out) = sidecar(undef, 'correct horse battery', 'create-admin',
                      '--email', 'Root@Example.COM', '--password-stdin');
is($rc, 0, 'create-admin exits 0') or diag $out;
my ($is_admin, $hash) = $dbh->selectrow_array(
    q{SELECT is_platform_admin, password_hash FROM users WHERE email = 'root@example.com'});
ok($is_admin, 'create-admin: user is a platform admin, email normalised');
like($hash, qr/^scrypt\$/, 'create-admin: password stored as a scrypt hash');
unlike($hash, qr/correct horse/, 'create-admin: never the plaintext');

($rc, $out) = sidecar(undef, 'short', 'create-admin',
                      '--email', 'x@example.com', '--password-stdin');
is($rc, 2, 'create-admin refuses a short password');
like($out, qr/at least 10/, '... with the policy in the message');

($rc, $out) = sidecar(undef, undef, 'create-admin', '--email', 'x@example.com');
is($rc, 2, 'create-admin needs --password-stdin');

$dbh->disconnect;
$admin->do("DROP DATABASE $db");
done_testing();
