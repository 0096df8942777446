/* trueport_record.h - usage and violation records as spool lines (JSON,
 * one line each, field names of docs/CONTRACT.md). Plain C. */
#ifndef TRUEPORT_RECORD_H
#define TRUEPORT_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "trueport_usage.h"

#define TP_RECORD_MAX 4096     /* a record never exceeds this */

typedef struct {
    int64_t            ts_ms;
    const char        *request_id;
    const char        *tenant_id;
    const char        *key_id;
    const char        *env;
    int                provider;
    const char        *model;        /* response's, else the request's */
    const char        *path;
    size_t             path_len;
    int                status;
    int                stream;
    tp_usage_result_t  usage;
    int64_t            ttfb_ms;      /* -1 unknown */
    int64_t            latency_ms;
    int64_t            bytes_in;
    int64_t            bytes_out;
    const char        *client_ip;
    const char        *error_kind;   /* NULL when none */
    int                completed;
} tp_usage_rec_t;

typedef struct {
    int64_t     ts_ms;
    const char *id;
    const char *request_id;
    const char *tenant_id;
    const char *key_id;
    const char *env;
    int         provider;
    const char *rule_id;
    const char *rule_name;
    const char *rule_type;
    const char *action;
    const char *detector;
    const char *excerpt;
} tp_violation_rec_t;

/* Writes the line (with its '\n') into buf; returns its length, or 0 when
 * cap is too small (cannot happen with TP_RECORD_MAX). */
size_t tp_record_usage(char *buf, size_t cap, const tp_usage_rec_t *r);
size_t tp_record_violation(char *buf, size_t cap, const tp_violation_rec_t *v);

/* Gives a complete line (it ends with "}\n") a "count" of the requests it
 * stands for, in place: ...,"count":N}\n. A count of 1 is left out (absent
 * means 1). Returns the new length, or 0 when the line is not one or cap
 * is too small (TP_RECORD_COUNT_ROOM more than the line always does). */
#define TP_RECORD_COUNT_ROOM  32
size_t tp_record_count(char *buf, size_t len, size_t cap, uint64_t count);

#endif
