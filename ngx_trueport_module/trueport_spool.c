/* trueport_spool.c - see trueport_spool.h. The sidecar's ingester reads
 * .open files up to their last complete line and removes .jsonl files once
 * ingested, so a record is never lost to rotation. */
#include "trueport_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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
        }
        errno = ENOSPC;
    }
    s->errors++;
    return -1;
}
