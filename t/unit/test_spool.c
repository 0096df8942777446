/* test_spool.c - append, rotation by size and age, sealing, bad dirs */
#include "../../sidecar/tests/tap.h"
#include "trueport_spool.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int tap_n, tap_failed;

static int
count(const char *dir, const char *suffix)
{
    DIR           *d = opendir(dir);
    struct dirent *e;
    int            n = 0;
    size_t         sl = strlen(suffix), l;

    while (d && (e = readdir(d))) {
        l = strlen(e->d_name);
        if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0) n++;
    }
    if (d) closedir(d);
    return n;
}

int
main(void)
{
    char        dir[] = "/tmp/tp-spool-test.XXXXXX";
    tp_spool_t  s;
    const char *rec = "{\"v\":1,\"type\":\"usage\"}\n";
    int64_t     t = 1800000000000LL;
    int         i, ok_all = 1;

    if (mkdtemp(dir) == NULL) return 1;

    tp_spool_init(&s, dir, 4242, 60, 60);
    for (i = 0; i < 2; i++) {
        ok_all &= tp_spool_append(&s, rec, strlen(rec), t) == 0;
    }
    ok(ok_all, "spool: appends succeed");
    is_int(count(dir, ".open"), 1, "spool: one open file");
    tp_spool_append(&s, rec, strlen(rec), t);
    is_int(s.size, 3 * (long long) strlen(rec), "spool: size tracked");

    ok(tp_spool_append(&s, rec, strlen(rec), t) == 0, "spool: append past max size");
    is_int(count(dir, ".jsonl"), 1, "spool: size rotation sealed the old file");
    is_int(count(dir, ".open"), 1, "spool: and opened a new one");

    tp_spool_append(&s, rec, strlen(rec), t + 61000);
    is_int(count(dir, ".jsonl"), 2, "spool: age rotation");

    tp_spool_seal(&s);
    is_int(count(dir, ".open"), 0, "spool: seal leaves no open file");
    is_int(count(dir, ".jsonl"), 3, "spool: sealed files stay for the ingester");

    tp_spool_init(&s, dir, 4243, 0, 0);
    tp_spool_append(&s, rec, strlen(rec), t);
    tp_spool_seal(&s);
    tp_spool_init(&s, dir, 4244, 0, 0);
    tp_spool_seal(&s);
    is_int(count(dir, ".jsonl"), 4, "spool: an empty never-opened spool makes no file");

    tp_spool_init(&s, "/nonexistent/dir", 1, 0, 0);
    ok(tp_spool_append(&s, rec, strlen(rec), t) == -1, "spool: unwritable dir fails cleanly");
    ok(s.errors == 1, "spool: errors counted");

    {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0) return 1;
    }
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
