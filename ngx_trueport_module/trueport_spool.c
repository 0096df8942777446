/* trueport_spool.c - see trueport_spool.h. The sidecar's ingester reads
 * .open files up to their last complete line and removes .jsonl files once
 * ingested, so a record is never lost to rotation. */
#include "trueport_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


void
tp_spool_init(tp_spool_t *s, const char *dir, pid_t pid, off_t max_size,
    time_t max_age)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    s->pid = pid;
    s->max_size = max_size;
    s->max_age = max_age;
    s->fd = -1;
}


static void
spool_path(tp_spool_t *s, char *out, size_t n, const char *suffix)
{
    snprintf(out, n, "%s/%s%s", s->dir, s->base, suffix);
}


void
tp_spool_seal(tp_spool_t *s)
{
    char from[640], to[640];

    if (s->fd < 0) {
        return;
    }
    close(s->fd);
    s->fd = -1;

    spool_path(s, from, sizeof(from), ".open");
    spool_path(s, to, sizeof(to), ".jsonl");
    if (s->size == 0) {
        (void) unlink(from);        /* nothing to ingest */
    } else {
        (void) rename(from, to);    /* on failure it stays .open: still read */
    }
}


static int
spool_open(tp_spool_t *s, int64_t now_ms)
{
    char path[640];

    /* unique per worker even for two rotations in one millisecond */
    snprintf(s->base, sizeof(s->base), "%ld-%lld-%u", (long) s->pid,
             (long long) now_ms, s->seq++);
    spool_path(s, path, sizeof(path), ".open");

    s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        return -1;
    }
    s->size = lseek(s->fd, 0, SEEK_END);
    s->opened = (time_t) (now_ms / 1000);
    return 0;
}


int
tp_spool_append(tp_spool_t *s, const char *rec, size_t len, int64_t now_ms)
{
    ssize_t n;

    if (s->fd >= 0
        && ((s->max_size > 0 && s->size >= s->max_size)
            || (s->max_age > 0 && now_ms / 1000 - s->opened >= s->max_age)))
    {
        tp_spool_seal(s);
    }

    if (s->fd < 0 && spool_open(s, now_ms) != 0) {
        s->errors++;
        return -1;
    }

    n = write(s->fd, rec, len);
    if (n > 0) {
        s->written += n;
    }
    if (n == (ssize_t) len) {
        s->size += n;
        s->errors = 0;
        return 0;
    }

    if (n > 0) {
        /* a torn record (disk full): end the line so the next record
         * starts clean; the ingester rejects the torn one */
        s->size += n;
        if (write(s->fd, "\n", 1) == 1) {
            s->size++;
            s->written++;
        }
        errno = ENOSPC;
    }
    s->errors++;
    return -1;
}


off_t
tp_spool_scan(const char *dir, unsigned *files)
{
    DIR           *d;
    size_t         n;
    off_t          total = 0;
    struct stat    st;
    struct dirent *e;

    *files = 0;

    d = opendir(dir);
    if (d == NULL) {
        return -1;
    }

    while ((e = readdir(d)) != NULL) {
        n = strlen(e->d_name);
        if (!((n > 5 && strcmp(e->d_name + n - 5, ".open") == 0)
              || (n > 6 && strcmp(e->d_name + n - 6, ".jsonl") == 0)))
        {
            continue;
        }
        /* a file the ingester removed meanwhile is simply not counted */
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0
            && S_ISREG(st.st_mode))
        {
            total += st.st_size;
            (*files)++;
        }
    }

    closedir(d);
    return total;
}


int
tp_spool_level(off_t total, off_t max_total)
{
    if (max_total <= 0) {
        return TP_SPOOL_BELOW;
    }
    if (total >= max_total) {
        return TP_SPOOL_FULL;
    }
    /* total * 10 cannot overflow: total < max_total, a disk's size */
    return total * 10 >= max_total * 9 ? TP_SPOOL_NEAR : TP_SPOOL_BELOW;
}


void
tp_spool_agg_init(tp_spool_agg_t *a, tp_spool_emit_pt emit, void *ctx)
{
    a->used = 0;
    a->emit = emit;
    a->ctx = ctx;
}


static void
agg_emit(tp_spool_agg_t *a, unsigned i)
{
    tp_spool_agg_slot_t *sl = &a->slot[i];
    size_t               n;

    n = tp_record_count(sl->line, sl->len, sizeof(sl->line), sl->count);
    a->emit(a->ctx, sl->line, n ? n : sl->len);

    /* the last slot takes its place */
    a->used--;
    if (i != a->used) {
        memcpy(sl, &a->slot[a->used], sizeof(*sl));
    }
}


unsigned
tp_spool_agg_flush(tp_spool_agg_t *a, int64_t sec)
{
    unsigned i, n = 0;

    for (i = 0; i < a->used; /* void */) {
        if (sec < 0 || a->slot[i].sec != sec) {
            agg_emit(a, i);         /* slot i is now another one */
            n++;
        } else {
            i++;
        }
    }
    return n;
}


void
tp_spool_agg_add(tp_spool_agg_t *a, const char *id, size_t id_len,
    int64_t sec, const char *line, size_t len)
{
    tp_spool_agg_slot_t *sl;
    unsigned             i, least;

    if (id_len > TP_SPOOL_AGG_ID || len > TP_RECORD_MAX) {
        a->emit(a->ctx, line, len);
        return;
    }

    /* a new second: the old ones are done */
    (void) tp_spool_agg_flush(a, sec);

    for (i = 0; i < a->used; i++) {
        sl = &a->slot[i];
        if (sl->id_len == id_len && memcmp(sl->id, id, id_len) == 0) {
            sl->count++;
            return;
        }
    }

    if (a->used == TP_SPOOL_AGG_SLOTS) {
        /* the most refused ids keep their slots */
        for (least = 0, i = 1; i < a->used; i++) {
            if (a->slot[i].count < a->slot[least].count) {
                least = i;
            }
        }
        agg_emit(a, least);
    }

    sl = &a->slot[a->used++];
    sl->sec = sec;
    sl->count = 1;
    sl->id_len = id_len;
    memcpy(sl->id, id, id_len);
    sl->len = len;
    memcpy(sl->line, line, len);
}
