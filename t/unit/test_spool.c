/* test_spool.c - append, rotation by size and age, sealing, bad dirs */
#include "../../sidecar/tests/tap.h"
#include "trueport_spool.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int tap_n, tap_failed;

static char    emitted[8192];
static size_t  emitted_len;
static int     emitted_n;

static void
emit(void *ctx, const char *line, size_t len)
{
    (void) ctx;
    if (emitted_len + len < sizeof(emitted)) {
        memcpy(emitted + emitted_len, line, len);
        emitted_len += len;
        emitted[emitted_len] = '\0';
    }
    emitted_n++;
}

static tp_spool_agg_t agg;      /* 270 KB: not on the stack */

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
    is_int(s.written, 4 * (long long) strlen(rec), "spool: written counts across rotation");
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

    {
        char   junk[600];
        FILE  *f;
        unsigned files;

        snprintf(junk, sizeof(junk), "%s/not-a-spool-file.tmp", dir);
        f = fopen(junk, "w");
        if (f) { fputs("ignored", f); fclose(f); }
        /* 5 records of 4242 (rotated twice), 1 of 4243 */
        is_int(tp_spool_scan(dir, &files), 6 * (long long) strlen(rec),
               "scan: the bytes of .open and .jsonl files, nothing else");
        is_int(files, 4, "scan: and their number");
        is_int(s.written, 0, "written: a spool that wrote nothing");
        is_int(tp_spool_scan("/nonexistent/dir", &files), -1, "scan: no dir, -1");
    }

    is_int(tp_spool_level(0, 1000), TP_SPOOL_BELOW, "level: empty");
    is_int(tp_spool_level(899, 1000), TP_SPOOL_BELOW, "level: below 90 %%");
    is_int(tp_spool_level(900, 1000), TP_SPOOL_NEAR, "level: 90 %% is near");
    is_int(tp_spool_level(999, 1000), TP_SPOOL_NEAR, "level: 99.9 %% is near");
    is_int(tp_spool_level(1000, 1000), TP_SPOOL_FULL, "level: at the cap");
    is_int(tp_spool_level((off_t) 1 << 50, ((off_t) 1 << 50) + 1),
           TP_SPOOL_NEAR, "level: no overflow on large sizes");

    tp_spool_agg_init(&agg, emit, NULL);
    tp_spool_agg_add(&agg, "k1", 2, 100, rec, strlen(rec));
    tp_spool_agg_add(&agg, "k1", 2, 100, rec, strlen(rec));
    tp_spool_agg_add(&agg, "k1", 2, 100, rec, strlen(rec));
    tp_spool_agg_add(&agg, "k2", 2, 100, rec, strlen(rec));
    is_int(emitted_n, 0, "agg: nothing written within the second");
    tp_spool_agg_add(&agg, "k1", 2, 101, rec, strlen(rec));
    is_int(emitted_n, 2, "agg: a new second writes the old one's records");
    is_str(emitted, "{\"v\":1,\"type\":\"usage\",\"count\":3}\n"
                    "{\"v\":1,\"type\":\"usage\"}\n",
           "agg: k1 with its count, k2 alone without one");
    is_int(agg.used, 1, "agg: the new second's slot stays");
    is_int(tp_spool_agg_flush(&agg, 101), 0, "agg: flush of the same second keeps it");
    is_int(tp_spool_agg_flush(&agg, -1), 1, "agg: flush of all writes it");
    is_int(agg.used, 0, "agg: empty after");

    emitted_n = 0;
    for (i = 0; i < TP_SPOOL_AGG_SLOTS; i++) {
        char id[16];
        int  j;

        snprintf(id, sizeof(id), "id%d", i);
        for (j = 0; j <= (i == 7 ? 0 : 1); j++) {
            tp_spool_agg_add(&agg, id, strlen(id), 200, rec, strlen(rec));
        }
    }
    is_int(emitted_n, 0, "agg: every slot in use, nothing written");
    emitted_len = 0;
    emitted[0] = '\0';
    tp_spool_agg_add(&agg, "new", 3, 200, rec, strlen(rec));
    is_int(emitted_n, 1, "agg: a full table writes one slot for a new id");
    is_str(emitted, rec, "agg: the least counted one (count 1)");
    {
        unsigned k;
        int      found = 0, gone = 1;

        for (k = 0; k < agg.used; k++) {
            found |= agg.slot[k].id_len == 3 && memcmp(agg.slot[k].id, "new", 3) == 0;
            gone &= !(agg.slot[k].id_len == 3 && memcmp(agg.slot[k].id, "id7", 3) == 0);
        }
        ok(found && gone && agg.used == TP_SPOOL_AGG_SLOTS,
           "agg: id7's slot went to the new id");
    }
    emitted_n = 0;
    (void) tp_spool_agg_flush(&agg, -1);
    is_int(emitted_n, TP_SPOOL_AGG_SLOTS, "agg: flush at exit writes every slot");

    {
        static char big[TP_RECORD_MAX + 10];

        memset(big, 'x', sizeof(big));
        emitted_n = 0;
        tp_spool_agg_add(&agg, "k", 1, 300, big, sizeof(big));
        is_int(emitted_n, 1, "agg: a line too long for a slot is written at once");
        is_int(agg.used, 0, "agg: and not kept");
    }

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
