/* trueport_usage.c - usage extraction from provider responses.
 *
 * One table of key paths per provider ("usage.prompt_tokens" ...) and a
 * yajl event parser that tracks the current path; the last value seen for
 * a path wins, which is right for every provider: OpenAI's final usage
 * chunk, Anthropic's message_start then message_delta, Gemini's running
 * totals. Streams are split into SSE events on the fly and each event's
 * data is fed straight to a fresh parser, so nothing is buffered but a
 * field name and yajl's own token buffer. */
#include "trueport_usage.h"

#include <string.h>
#include <yajl/yajl_parse.h>
#include <zlib.h>

#define PATH_MAX_LEN 160

enum {
    F_IN = 0, F_OUT, F_TOTAL, F_CACHED, F_REASON, F_CREAD, F_CCREATE,
    F_CAND, F_MODEL, F_COUNT
};

typedef struct {
    const char *path;
    int         field;
} path_field_t;

static const path_field_t openai_paths[] = {
    { "usage.prompt_tokens", F_IN },
    { "usage.completion_tokens", F_OUT },
    { "usage.total_tokens", F_TOTAL },
    { "usage.prompt_tokens_details.cached_tokens", F_CACHED },
    { "usage.completion_tokens_details.reasoning_tokens", F_REASON },
    /* the Responses API, plain and streamed */
    { "usage.input_tokens", F_IN },
    { "usage.output_tokens", F_OUT },
    { "usage.input_tokens_details.cached_tokens", F_CACHED },
    { "usage.output_tokens_details.reasoning_tokens", F_REASON },
    { "response.usage.input_tokens", F_IN },
    { "response.usage.output_tokens", F_OUT },
    { "response.usage.total_tokens", F_TOTAL },
    { "response.usage.input_tokens_details.cached_tokens", F_CACHED },
    { "response.usage.output_tokens_details.reasoning_tokens", F_REASON },
    { "response.model", F_MODEL },
    { "model", F_MODEL },
    { NULL, 0 }
};

static const path_field_t anthropic_paths[] = {
    { "usage.input_tokens", F_IN },
    { "usage.output_tokens", F_OUT },
    { "usage.cache_read_input_tokens", F_CREAD },
    { "usage.cache_creation_input_tokens", F_CCREATE },
    { "message.usage.input_tokens", F_IN },
    { "message.usage.output_tokens", F_OUT },
    { "message.usage.cache_read_input_tokens", F_CREAD },
    { "message.usage.cache_creation_input_tokens", F_CCREATE },
    { "message.model", F_MODEL },
    { "model", F_MODEL },
    { NULL, 0 }
};

static const path_field_t google_paths[] = {
    { "usageMetadata.promptTokenCount", F_IN },
    { "usageMetadata.candidatesTokenCount", F_CAND },
    { "usageMetadata.totalTokenCount", F_TOTAL },
    { "usageMetadata.cachedContentTokenCount", F_CACHED },
    { "usageMetadata.thoughtsTokenCount", F_REASON },
    { "modelVersion", F_MODEL },
    { NULL, 0 }
};

const char *tp_provider_names[TP_PROVIDERS] = {
    "openai", "anthropic", "google", "azure"
};

typedef enum { SSE_FIELD = 0, SSE_DATA, SSE_SKIP } sse_state_t;

struct tp_usage_s {
    tp_alloc_t          a;
    yajl_alloc_funcs    yaf;
    int                 provider;
    int                 stream;
    const path_field_t *paths;

    yajl_handle         y;           /* current document or SSE event */
    int                 y_failed;    /* this document is not ours: skip it */

    /* key path of the current value */
    char                path[PATH_MAX_LEN];
    size_t              path_len;
    size_t              base[TP_USAGE_DEPTH + 1];
    int                 depth;
    int                 lost_depth;  /* >0: inside a subtree too deep */

    /* SSE line state */
    sse_state_t         sse;
    char                field[8];
    size_t              field_len;
    int                 skip_space;  /* one space after "data:" */
    int                 after_cr;
    int                 event_lines; /* data lines in the current event */

    /* gzip */
    int                 gzip;
    int                 z_init;      /* inflateEnd needed */
    int                 z_ok;
    z_stream            z;

    int64_t             v[F_COUNT];
    char                model[TP_USAGE_MODEL_MAX];
};


int
tp_provider_parse(const char *name, size_t len)
{
    int i;

    for (i = 0; i < TP_PROVIDERS; i++) {
        if (strlen(tp_provider_names[i]) == len
            && memcmp(tp_provider_names[i], name, len) == 0)
        {
            return i;
        }
    }
    return -1;
}


/* yajl allocator shims onto the caller's allocator */

static void *
y_malloc(void *ctx, size_t n)
{
    tp_usage_t *u = ctx;
    return u->a.alloc(u->a.ctx, n);
}


static void *
y_realloc(void *ctx, void *p, size_t n)
{
    tp_usage_t *u = ctx;
    return u->a.realloc(u->a.ctx, p, n);
}


static void
y_free(void *ctx, void *p)
{
    tp_usage_t *u = ctx;
    u->a.free(u->a.ctx, p);
}


static voidpf
z_alloc(voidpf ctx, uInt items, uInt size)
{
    tp_usage_t *u = ctx;
    return u->a.alloc(u->a.ctx, (size_t) items * size);
}


static void
z_free(voidpf ctx, voidpf p)
{
    tp_usage_t *u = ctx;
    u->a.free(u->a.ctx, p);
}


static int
match_field(tp_usage_t *u)
{
    const path_field_t *pf;
    const char         *p = u->path;
    size_t              n = u->path_len;

    if (u->lost_depth) {
        return -1;
    }
    /* Gemini streams without alt=sse as one JSON array of chunks */
    if (n > 3 && memcmp(p, "[].", 3) == 0) {
        p += 3;
        n -= 3;
    }
    for (pf = u->paths; pf->path; pf++) {
        if (strlen(pf->path) == n && memcmp(pf->path, p, n) == 0) {
            return pf->field;
        }
    }
    return -1;
}


static int
cb_number(void *ctx, const char *s, size_t len)
{
    tp_usage_t *u = ctx;
    int64_t     v = 0;
    size_t      i;
    int         f = match_field(u);

    if (f < 0 || f == F_MODEL) {
        return 1;
    }
    /* token counts are small non-negative integers; anything else is
     * ignored rather than trusted */
    if (len == 0 || len > 15) {
        return 1;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 1;
        }
        v = v * 10 + (s[i] - '0');
    }
    u->v[f] = v;
    return 1;
}


static int
cb_string(void *ctx, const unsigned char *s, size_t len)
{
    tp_usage_t *u = ctx;

    if (match_field(u) == F_MODEL && len > 0) {
        if (len >= sizeof(u->model)) {
            len = sizeof(u->model) - 1;
        }
        memcpy(u->model, s, len);
        u->model[len] = '\0';
    }
    return 1;
}


static int
cb_scalar(void *ctx)
{
    (void) ctx;
    return 1;
}


static int
cb_bool(void *ctx, int b)
{
    (void) ctx;
    (void) b;
    return 1;
}


static int
open_container(tp_usage_t *u, int array)
{
    if (u->lost_depth || u->depth >= TP_USAGE_DEPTH) {
        u->lost_depth++;
        return 1;
    }
    u->base[u->depth++] = u->path_len;
    if (array) {
        if (u->path_len + 3 >= PATH_MAX_LEN) {
            u->lost_depth++;
            u->depth--;
            return 1;
        }
        if (u->path_len) {
            u->path[u->path_len++] = '.';
        }
        memcpy(u->path + u->path_len, "[]", 2);
        u->path_len += 2;
    }
    return 1;
}


static int
close_container(tp_usage_t *u)
{
    if (u->lost_depth) {
        u->lost_depth--;
        return 1;
    }
    if (u->depth > 0) {
        u->path_len = u->base[--u->depth];
    }
    return 1;
}


static int
cb_start_map(void *ctx)
{
    return open_container(ctx, 0);
}


static int
cb_start_array(void *ctx)
{
    return open_container(ctx, 1);
}


static int
cb_end(void *ctx)
{
    return close_container(ctx);
}


static int
cb_key(void *ctx, const unsigned char *k, size_t len)
{
    tp_usage_t *u = ctx;
    size_t      base;

    if (u->lost_depth || u->depth == 0) {
        return 1;
    }
    base = u->base[u->depth - 1];
    if (base + 1 + len >= PATH_MAX_LEN) {
        /* a key too long to be one of ours: make the path unmatchable */
        u->path_len = base;
        u->path[u->path_len++] = '\x01';
        return 1;
    }
    u->path_len = base;
    if (base) {
        u->path[u->path_len++] = '.';
    }
    memcpy(u->path + u->path_len, k, len);
    u->path_len += len;
    return 1;
}


static const yajl_callbacks callbacks = {
    cb_scalar,       /* null */
    cb_bool,
    NULL,            /* integer: numbers come raw through yajl_number */
    NULL,            /* double */
    cb_number,
    cb_string,
    cb_start_map,
    cb_key,
    cb_end,
    cb_start_array,
    cb_end
};


static void
doc_begin(tp_usage_t *u)
{
    u->depth = 0;
    u->lost_depth = 0;
    u->path_len = 0;
    u->y_failed = 0;
    u->y = yajl_alloc(&callbacks, &u->yaf, u);
    if (u->y == NULL) {
        u->y_failed = 1;
    }
}


static void
doc_feed(tp_usage_t *u, const unsigned char *p, size_t n)
{
    if (u->y == NULL || u->y_failed || n == 0) {
        return;
    }
    if (yajl_parse(u->y, p, n) != yajl_status_ok) {
        /* "[DONE]", an HTML error page ...: not a document of ours */
        u->y_failed = 1;
    }
}


static void
doc_end(tp_usage_t *u)
{
    if (u->y == NULL) {
        return;
    }
    if (!u->y_failed) {
        (void) yajl_complete_parse(u->y);
    }
    yajl_free(u->y);
    u->y = NULL;
}


/* SSE: "field: value" lines; an empty line ends an event. Only data lines
 * matter; their payload goes to the event's parser as it arrives. */
static void
sse_feed(tp_usage_t *u, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n, *start;

    while (p < end) {
        if (u->after_cr) {
            u->after_cr = 0;
            if (*p == '\n') {
                p++;
                continue;
            }
        }

        switch (u->sse) {

        case SSE_FIELD:
            if (*p == '\r' || *p == '\n') {
                if (u->field_len == 0) {
                    /* blank line: the event is complete */
                    if (u->event_lines) {
                        doc_end(u);
                        u->event_lines = 0;
                    }
                }
                u->field_len = 0;
                u->after_cr = *p == '\r';
                p++;
                break;
            }
            if (*p == ':') {
                if (u->field_len == 4 && memcmp(u->field, "data", 4) == 0) {
                    u->sse = SSE_DATA;
                    u->skip_space = 1;
                    if (u->event_lines++ == 0) {
                        doc_begin(u);
                    } else {
                        /* lines of one event join with a newline */
                        doc_feed(u, (const unsigned char *) "\n", 1);
                    }
                } else {
                    u->sse = SSE_SKIP;
                }
                p++;
                break;
            }
            if (u->field_len < sizeof(u->field)) {
                u->field[u->field_len++] = (char) *p;
            } else {
                u->sse = SSE_SKIP;   /* a field name we do not know */
            }
            p++;
            break;

        case SSE_DATA:
            if (u->skip_space) {
                u->skip_space = 0;
                if (*p == ' ') {
                    p++;
                    break;
                }
            }
            start = p;
            while (p < end && *p != '\r' && *p != '\n') {
                p++;
            }
            doc_feed(u, start, p - start);
            if (p < end) {
                /* the line ended; the next one starts with a field */
                u->sse = SSE_FIELD;
                u->field_len = 0;
                u->after_cr = *p == '\r';
                p++;
            }
            break;

        case SSE_SKIP:
            while (p < end && *p != '\r' && *p != '\n') {
                p++;
            }
            if (p < end) {
                u->sse = SSE_FIELD;
                u->field_len = 0;
                u->after_cr = *p == '\r';
                p++;
            }
            break;
        }
    }
}


static void
plain_feed(tp_usage_t *u, const unsigned char *p, size_t n)
{
    if (u->stream) {
        sse_feed(u, p, n);
    } else {
        doc_feed(u, p, n);
    }
}


tp_usage_t *
tp_usage_create(const tp_alloc_t *a, int provider, int stream, int gzip)
{
    tp_usage_t *u;
    int         i;

    if (provider < 0 || provider >= TP_PROVIDERS) {
        return NULL;
    }
    u = a->alloc(a->ctx, sizeof(tp_usage_t));
    if (u == NULL) {
        return NULL;
    }
    memset(u, 0, sizeof(*u));
    u->a = *a;
    u->yaf.malloc = y_malloc;
    u->yaf.realloc = y_realloc;
    u->yaf.free = y_free;
    u->yaf.ctx = u;
    u->provider = provider;
    u->stream = stream;
    u->paths = provider == TP_ANTHROPIC ? anthropic_paths
               : provider == TP_GOOGLE ? google_paths : openai_paths;
    for (i = 0; i < F_COUNT; i++) {
        u->v[i] = -1;
    }

    if (gzip) {
        u->gzip = 1;
        u->z.zalloc = z_alloc;
        u->z.zfree = z_free;
        u->z.opaque = u;
        u->z_init = inflateInit2(&u->z, 16 + MAX_WBITS) == Z_OK;
        u->z_ok = u->z_init;
    }

    if (!stream) {
        doc_begin(u);
    }
    return u;
}


void
tp_usage_feed(tp_usage_t *u, const unsigned char *buf, size_t len)
{
    unsigned char out[4096];
    int           rc;

    if (u == NULL || len == 0) {
        return;
    }
    if (!u->gzip) {
        plain_feed(u, buf, len);
        return;
    }
    if (!u->z_ok) {
        return;
    }

    /* a copy is inflated for us; the client gets the bytes as they are */
    u->z.next_in = (unsigned char *) buf;
    u->z.avail_in = (uInt) len;
    do {
        u->z.next_out = out;
        u->z.avail_out = sizeof(out);
        rc = inflate(&u->z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            u->z_ok = 0;
            return;
        }
        plain_feed(u, out, sizeof(out) - u->z.avail_out);
    } while (u->z.avail_out == 0 && rc != Z_STREAM_END);
}


void
tp_usage_result(tp_usage_t *u, tp_usage_result_t *r)
{
    int64_t *v = u->v, in;

    /* the last SSE event may end without a blank line */
    if (u->stream && u->event_lines) {
        doc_end(u);
        u->event_lines = 0;
    }
    if (!u->stream && u->y != NULL) {
        doc_end(u);
    }

    memset(r, 0, sizeof(*r));
    r->input_tokens = v[F_IN];
    r->output_tokens = v[F_OUT];
    r->cached_tokens = v[F_CACHED];
    r->reasoning_tokens = v[F_REASON];
    r->total_tokens = v[F_TOTAL];

    switch (u->provider) {

    case TP_ANTHROPIC:
        /* Anthropic counts cache reads and writes outside input_tokens */
        if (v[F_IN] >= 0 || v[F_CREAD] >= 0 || v[F_CCREATE] >= 0) {
            in = (v[F_IN] > 0 ? v[F_IN] : 0) + (v[F_CREAD] > 0 ? v[F_CREAD] : 0)
                 + (v[F_CCREATE] > 0 ? v[F_CCREATE] : 0);
            r->input_tokens = in;
        }
        r->cached_tokens = v[F_CREAD];
        break;

    case TP_GOOGLE:
        /* thinking tokens are billed as output */
        if (v[F_CAND] >= 0 || v[F_REASON] >= 0) {
            r->output_tokens = (v[F_CAND] > 0 ? v[F_CAND] : 0)
                               + (v[F_REASON] > 0 ? v[F_REASON] : 0);
        }
        break;
    }

    if (r->total_tokens < 0 && (r->input_tokens >= 0 || r->output_tokens >= 0))
    {
        r->total_tokens = (r->input_tokens > 0 ? r->input_tokens : 0)
                          + (r->output_tokens > 0 ? r->output_tokens : 0);
    }
    memcpy(r->model, u->model, sizeof(r->model));
}


void
tp_usage_destroy(tp_usage_t *u)
{
    if (u == NULL) {
        return;
    }
    if (u->y != NULL) {
        yajl_free(u->y);
    }
    if (u->z_init) {
        inflateEnd(&u->z);
    }
    u->a.free(u->a.ctx, u);
}
