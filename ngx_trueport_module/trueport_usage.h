/* trueport_usage.h - token usage and model from a provider response, fed
 * incrementally (JSON or SSE, optionally gzip) with bounded memory.
 * Plain C on plain buffers: no nginx types, so it can be unit-tested and
 * fuzzed alone. Memory comes from the caller's allocator. */
#ifndef TRUEPORT_USAGE_H
#define TRUEPORT_USAGE_H

#include <stddef.h>
#include <stdint.h>

enum { TP_OPENAI = 0, TP_ANTHROPIC, TP_GOOGLE, TP_AZURE, TP_PROVIDERS };

#define TP_USAGE_MODEL_MAX 96
#define TP_USAGE_DEPTH     8        /* key path levels tracked */

typedef struct {
    void *(*alloc)(void *ctx, size_t n);
    void *(*realloc)(void *ctx, void *p, size_t n);
    void  (*free)(void *ctx, void *p);
    void   *ctx;
} tp_alloc_t;

/* provider-neutral totals; -1 = not seen */
typedef struct {
    int64_t input_tokens;       /* every prompt token, cached included */
    int64_t output_tokens;      /* reasoning included */
    int64_t cached_tokens;
    int64_t reasoning_tokens;
    int64_t total_tokens;
    char    model[TP_USAGE_MODEL_MAX];
} tp_usage_result_t;

typedef struct tp_usage_s tp_usage_t;

/* stream: the body is text/event-stream; gzip: Content-Encoding gzip */
tp_usage_t *tp_usage_create(const tp_alloc_t *a, int provider, int stream,
                            int gzip);
/* Feeds a piece of the body. Never fails the response: a body that is not
 * what we expect just yields no usage. */
void tp_usage_feed(tp_usage_t *u, const unsigned char *buf, size_t len);
/* Finishes (flushes a last SSE event / JSON document) and normalises. */
void tp_usage_result(tp_usage_t *u, tp_usage_result_t *out);
void tp_usage_destroy(tp_usage_t *u);

/* Provider from its name ("openai" ...), -1 when unknown. */
int tp_provider_parse(const char *name, size_t len);
extern const char *tp_provider_names[TP_PROVIDERS];

#endif
