/* trueport_spool.h - a worker's append-only spool file of JSON lines, with
 * rotation by size and age; the spool's total against its cap, and the
 * per-second aggregation of refusals near the cap. Plain POSIX: one
 * write() per record, no locks, never blocks on anything but the local
 * disk. */
#ifndef TRUEPORT_SPOOL_H
#define TRUEPORT_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "trueport_record.h"

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
    uint64_t  written;         /* bytes written, all files */
} tp_spool_t;

void tp_spool_init(tp_spool_t *s, const char *dir, pid_t pid, off_t max_size,
                   time_t max_age);

/* Appends one record (must end with '\n'). 0 ok; -1 with errno set when
 * the record could not be written whole (the caller logs it). */
int tp_spool_append(tp_spool_t *s, const char *rec, size_t len, int64_t now_ms);

/* Seals the current file (rename .open -> .jsonl) and closes it: at
 * rotation and when the worker exits. */
void tp_spool_seal(tp_spool_t *s);

/* The bytes of the spool's files in dir (.open and .jsonl: what the
 * ingester reads and removes), or -1 when dir cannot be read; *files gets
 * their number. */
off_t tp_spool_scan(const char *dir, unsigned *files);

/* where a total stands against the cap */
#define TP_SPOOL_BELOW  0
#define TP_SPOOL_NEAR   1      /* >= 90 %: refusals are aggregated */
#define TP_SPOOL_FULL   2      /* >= 100 %: refusals are dropped */

int tp_spool_level(off_t total, off_t max_total);


/*
 * Refusals near the cap: one record per (id, second) with a "count"
 * instead of one per request. A slot keeps the line of the first refusal;
 * it is emitted, with its count, when a refusal of another second comes,
 * at tp_spool_agg_flush() or when its slot is needed (the least counted
 * goes), so no refusal that was aggregated is lost.
 */

#define TP_SPOOL_AGG_SLOTS  64
#define TP_SPOOL_AGG_ID     96

typedef struct {
    int64_t   sec;
    uint64_t  count;
    size_t    id_len;
    size_t    len;
    char      id[TP_SPOOL_AGG_ID];
    char      line[TP_RECORD_MAX + TP_RECORD_COUNT_ROOM];
} tp_spool_agg_slot_t;

typedef void (*tp_spool_emit_pt)(void *ctx, const char *line, size_t len);

typedef struct {
    unsigned             used;
    tp_spool_emit_pt     emit;     /* writes one line */
    void                *ctx;
    tp_spool_agg_slot_t  slot[TP_SPOOL_AGG_SLOTS];
} tp_spool_agg_t;

void tp_spool_agg_init(tp_spool_agg_t *a, tp_spool_emit_pt emit, void *ctx);

/* Counts the refusal line (a complete record) in the slot of id for sec;
 * a line or id too long for a slot is emitted at once. */
void tp_spool_agg_add(tp_spool_agg_t *a, const char *id, size_t id_len,
                      int64_t sec, const char *line, size_t len);

/* Emits the slots of seconds other than sec (sec < 0: all of them);
 * returns how many. */
unsigned tp_spool_agg_flush(tp_spool_agg_t *a, int64_t sec);

#endif
