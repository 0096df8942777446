/* trueport_spool.h - a worker's append-only spool file of JSON lines, with
 * rotation by size and age. Plain POSIX: one write() per record, no locks,
 * never blocks on anything but the local disk. */
#ifndef TRUEPORT_SPOOL_H
#define TRUEPORT_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef struct {
    char      dir[512];
    pid_t     pid;
    off_t     max_size;        /* rotate when the file reaches this size */
    time_t    max_age;         /* ... or is this old (seconds) */

    int       fd;              /* -1 when closed */
    char      base[64];        /* "<pid>-<start ms>-<seq>" */
    unsigned  seq;
    off_t     size;
    time_t    opened;
    unsigned  errors;          /* failed writes since the last success */
} tp_spool_t;

void tp_spool_init(tp_spool_t *s, const char *dir, pid_t pid, off_t max_size,
                   time_t max_age);

/* Appends one record (must end with '\n'). 0 ok; -1 with errno set when
 * the record could not be written whole (the caller logs it). */
int tp_spool_append(tp_spool_t *s, const char *rec, size_t len, int64_t now_ms);

/* Seals the current file (rename .open -> .jsonl) and closes it: at
 * rotation and when the worker exits. */
void tp_spool_seal(tp_spool_t *s);

#endif
