/* spool_record.h - one spool line (a flat JSON object) into typed fields */
#ifndef TP_SPOOL_RECORD_H
#define TP_SPOOL_RECORD_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

typedef enum {
    SR_ABSENT = 0,
    SR_NULL,
    SR_TRUE,
    SR_FALSE,
    SR_INT,         /* an integer that fits a long long */
    SR_NUMBER,      /* any other number */
    SR_STRING,
    SR_OTHER        /* an object or an array */
} sr_type_t;

typedef struct {
    sr_type_t   type;
    const char *s;      /* SR_STRING: decoded UTF-8, not NUL-terminated */
    size_t      len;
    long long   i;      /* SR_INT */
} sr_value_t;

/* the fields of docs/CONTRACT.md the ingester reads; others are ignored */
typedef enum {
    SR_TYPE, SR_TS, SR_REQUEST_ID, SR_TENANT_ID, SR_KEY_ID, SR_ENV,
    SR_PROVIDER, SR_MODEL, SR_PATH, SR_STATUS, SR_STREAM, SR_INPUT_TOKENS,
    SR_OUTPUT_TOKENS, SR_CACHED_TOKENS, SR_REASONING_TOKENS, SR_TOTAL_TOKENS,
    SR_TTFB_MS, SR_LATENCY_MS, SR_BYTES_IN, SR_BYTES_OUT, SR_CLIENT_IP,
    SR_ERROR_KIND, SR_COMPLETED, SR_COUNT, SR_ID, SR_RULE_ID, SR_RULE_NAME,
    SR_RULE_TYPE, SR_ACTION, SR_DETECTOR, SR_EXCERPT,
    SR_FIELDS
} sr_field_t;

extern const char *const spool_record_names[SR_FIELDS];

typedef struct {
    sr_value_t f[SR_FIELDS];
} spool_record_t;

/* The fast path: one pass over a line that is a flat JSON object whose
 * values are all scalars. scratch must hold len bytes; strings with
 * escapes are decoded there, the others point into line. Accepts only
 * what yajl's tree parser accepts and yields the same values (the last of
 * duplicate keys wins). Returns 0, or -1 for anything else (malformed,
 * nested, comments, \u0000, lone surrogates, non-shortest UTF-8): the
 * caller then asks spool_record_from_tree, which decides as before. */
int spool_record_parse(spool_record_t *r, const char *line, size_t len,
    char *scratch) __attribute__((warn_unused_result));

/* The same fields from a parsed yajl object (the slow, general path). */
void spool_record_from_tree(spool_record_t *r, yajl_val obj);

#endif
