/* ingest.h - the spool ingester: usage and violation records written by
 * nginx workers, into Postgres exactly once (COPY + checkpoint, one txn) */
#ifndef TP_INGEST_H
#define TP_INGEST_H

#include <libpq-fe.h>

typedef struct {
    long long backlog_bytes;     /* not yet ingested, complete lines or not */
    long long backlog_records;   /* complete lines not yet ingested */
    long long files;
    long long ingested;          /* records committed since start */
    long long rejected;          /* unparseable lines skipped */
    long long unpriced;          /* usage records with no price (cost null) */
    long long batches;
    char      last_error[160];
} ingest_stats_t;

/* Starts the ingester thread when cfg.spool_dir is set. */
int  ingest_start(void) __attribute__((warn_unused_result));
void ingest_stop(void);
void ingest_stats(ingest_stats_t *out);   /* a consistent copy */

/* One pass over the spool directory: ingests everything complete.
 * Returns records committed, or -1 on a database error (nothing of the
 * failed batch is committed; it is retried on the next pass). */
long long ingest_pass(PGconn *c, const char *dir, ingest_stats_t *st);

/* Pure helpers (unit tests): a usage line -> COPY text row, cost. */
typedef struct {
    char   provider[16];
    char   model[96];
    double in, out, cached;      /* USD per million tokens */
} price_t;

long long ingest_cost(const price_t *prices, int n, const char *provider,
                      const char *model, long long input, long long output,
                      long long cached, int *found);

#endif
