/* trueport_usage.c - usage extraction from provider responses.
 *
 * One table of key paths per provider ("usage.prompt_tokens" ...) and a
 * JSON event tokenizer that tracks the current path; the last value seen
 * for a path wins, which is right for every provider: OpenAI's final usage
 * chunk, Anthropic's message_start then message_delta, Gemini's running
 * totals. Streams are split into SSE events on the fly and each event's
 * data is fed straight to the tokenizer, reset per event, so nothing is
 * buffered but a field name and one short token (a key, a number, the
 * model). The tokenizer is our own, not yajl: it keeps no bytes it does
 * not need (the reply's text is skipped, not copied or validated) and
 * allocates nothing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE          /* memmem */
#endif

#include "trueport_usage.h"
#include "trueport_scan.h"

#include <string.h>
#include <zlib.h>

#define PATH_MAX_LEN 160
#define J_MAX_NEST   1024     /* deeper documents are not ours */
#define J_TOK_MAX    PATH_MAX_LEN

enum {
    F_IN = 0, F_OUT, F_TOTAL, F_CACHED, F_REASON, F_CREAD, F_CCREATE,
    F_CAND, F_MODEL, F_COUNT
};

typedef struct {
    const char *path;
    size_t      len;
    int         field;
} path_field_t;

#define PF(path, field)  { path, sizeof(path) - 1, field }

static const path_field_t openai_paths[] = {
    PF("usage.prompt_tokens", F_IN),
    PF("usage.completion_tokens", F_OUT),
    PF("usage.total_tokens", F_TOTAL),
    PF("usage.prompt_tokens_details.cached_tokens", F_CACHED),
    PF("usage.completion_tokens_details.reasoning_tokens", F_REASON),
    /* the Responses API, plain and streamed */
    PF("usage.input_tokens", F_IN),
    PF("usage.output_tokens", F_OUT),
    PF("usage.input_tokens_details.cached_tokens", F_CACHED),
    PF("usage.output_tokens_details.reasoning_tokens", F_REASON),
    PF("response.usage.input_tokens", F_IN),
    PF("response.usage.output_tokens", F_OUT),
    PF("response.usage.total_tokens", F_TOTAL),
    PF("response.usage.input_tokens_details.cached_tokens", F_CACHED),
    PF("response.usage.output_tokens_details.reasoning_tokens", F_REASON),
    PF("response.model", F_MODEL),
    PF("model", F_MODEL),
    { NULL, 0, 0 }
};

static const path_field_t anthropic_paths[] = {
    PF("usage.input_tokens", F_IN),
    PF("usage.output_tokens", F_OUT),
    PF("usage.cache_read_input_tokens", F_CREAD),
    PF("usage.cache_creation_input_tokens", F_CCREATE),
    PF("message.usage.input_tokens", F_IN),
    PF("message.usage.output_tokens", F_OUT),
    PF("message.usage.cache_read_input_tokens", F_CREAD),
    PF("message.usage.cache_creation_input_tokens", F_CCREATE),
    PF("message.model", F_MODEL),
    PF("model", F_MODEL),
    { NULL, 0, 0 }
};

static const path_field_t google_paths[] = {
    PF("usageMetadata.promptTokenCount", F_IN),
    PF("usageMetadata.candidatesTokenCount", F_CAND),
    PF("usageMetadata.totalTokenCount", F_TOTAL),
    PF("usageMetadata.cachedContentTokenCount", F_CACHED),
    PF("usageMetadata.thoughtsTokenCount", F_REASON),
    PF("modelVersion", F_MODEL),
    { NULL, 0, 0 }
};

const char *tp_provider_names[TP_PROVIDERS] = {
    "openai", "anthropic", "google", "azure"
};

typedef enum { SSE_FIELD = 0, SSE_DATA, SSE_SKIP } sse_state_t;

struct tp_usage_s {
    tp_alloc_t          a;
    int                 provider;
    int                 stream;
    const path_field_t *paths;

    /* the tokenizer of the current document or SSE event (doc_*) */
    int                 j_open;      /* a document is being read */
    int                 j_failed;    /* this document is not ours: skip it */
    int                 j_state;     /* J_* */
    int                 j_key;       /* the string being read is a key */
    int                 j_capture;   /* its bytes are kept in j_tok */
    int                 j_skip_next; /* the coming value holds none of ours */
    unsigned            j_skip_depth;
    int                 j_skip_str, j_skip_esc;
    unsigned            j_nest;      /* containers open */
    unsigned            j_uni, j_uni_n;  /* a \uXXXX escape */
    unsigned char      *j_dst;       /* where a kept string goes: */
    size_t              j_dst_len;   /* the path (a key) or j_tok */
    size_t              j_dst_cap;
    unsigned char       j_tok[J_TOK_MAX];
    unsigned char       j_obj[J_MAX_NEST / 8];  /* bit set: an object */

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
    int                 event_fresh; /* before its first data byte */

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
        if (pf->len == n && pf->path[n - 1] == p[n - 1]
            && memcmp(pf->path, p, n) == 0)
        {
            return pf->field;
        }
    }
    return -1;
}


/* whether the value of the key just read can hold one of our paths: the
 * path is one of the table's or leads to one; any other object or array
 * value is skipped whole (J_SKIP) */
static int
path_wanted(tp_usage_t *u)
{
    const path_field_t *pf;
    const char         *p = u->path;
    size_t              n = u->path_len;

    if (n > 3 && memcmp(p, "[].", 3) == 0) {
        p += 3;
        n -= 3;
    }
    for (pf = u->paths; pf->path; pf++) {
        if (pf->len >= n && pf->path[0] == p[0]
            && (pf->len == n || pf->path[n] == '.')
            && memcmp(pf->path, p, n) == 0)
        {
            return 1;
        }
    }
    return 0;
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


/* A key's bytes go straight into the path after its parent's (no copy):
 * key_begin says where, key_end settles the path. */
static int
key_begin(tp_usage_t *u)
{
    size_t base;

    if (u->lost_depth || u->depth == 0) {
        return 0;
    }
    base = u->base[u->depth - 1];
    u->path_len = base;
    if (base) {
        u->path[u->path_len++] = '.';
    }
    u->j_dst = (unsigned char *) u->path;
    u->j_dst_len = u->path_len;
    u->j_dst_cap = PATH_MAX_LEN - 1;
    return 1;
}


static void
key_end(tp_usage_t *u)
{
    if (u->j_dst_len >= u->j_dst_cap) {
        /* a key too long to be one of ours: make the path unmatchable */
        u->path_len = u->base[u->depth - 1];
        u->path[u->path_len++] = '\x01';
        u->j_skip_next = 1;
        return;
    }
    u->path_len = u->j_dst_len;
    u->j_skip_next = !path_wanted(u);
}


/* The JSON tokenizer: a state machine over any split of the input that
 * calls the cb_* handlers above as a SAX parser would. Strict enough to
 * tell a JSON document from "[DONE]" or an HTML page (anything else marks
 * the document failed and the rest of it is ignored), loose where being
 * strict would cost and tell us nothing: strings are not checked for
 * UTF-8, literals only for their letters, numbers for their characters. */

enum {
    J_VALUE = 0,         /* a value is expected */
    J_VALUE_OR_END,      /* after '[' */
    J_KEY_OR_END,        /* after '{' */
    J_KEY,               /* after ',' in an object */
    J_COLON,             /* after a key */
    J_AFTER,             /* after a value */
    J_STRING,
    J_ESC,               /* after a backslash in a string */
    J_UNI,               /* in \uXXXX */
    J_NUMBER,
    J_LITERAL,           /* true, false, null */
    J_SKIP,              /* in an object or array none of ours is in */
    J_DONE               /* the top-level value is complete */
};

#define j_ws(c)  ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')


static void
j_put(tp_usage_t *u, unsigned char c)
{
    if (u->j_dst_len < u->j_dst_cap) {
        u->j_dst[u->j_dst_len++] = c;
    }
}


/* the next bytes go to the token buffer (a number, the model) */
static void
j_tok_begin(tp_usage_t *u)
{
    u->j_dst = u->j_tok;
    u->j_dst_len = 0;
    u->j_dst_cap = J_TOK_MAX;
}


/* a code point from \uXXXX, as UTF-8 (halves of a surrogate pair each as
 * three bytes: nothing we match holds one) */
static void
j_put_uni(tp_usage_t *u, unsigned cp)
{
    if (cp < 0x80) {
        j_put(u, (unsigned char) cp);
    } else if (cp < 0x800) {
        j_put(u, (unsigned char) (0xc0 | (cp >> 6)));
        j_put(u, (unsigned char) (0x80 | (cp & 0x3f)));
    } else {
        j_put(u, (unsigned char) (0xe0 | (cp >> 12)));
        j_put(u, (unsigned char) (0x80 | ((cp >> 6) & 0x3f)));
        j_put(u, (unsigned char) (0x80 | (cp & 0x3f)));
    }
}


static int
j_push(tp_usage_t *u, int object)
{
    if (u->j_nest >= J_MAX_NEST) {
        return -1;
    }
    if (object) {
        u->j_obj[u->j_nest >> 3] |= (unsigned char) (1u << (u->j_nest & 7));
        cb_start_map(u);
    } else {
        u->j_obj[u->j_nest >> 3] &= (unsigned char) ~(1u << (u->j_nest & 7));
        cb_start_array(u);
    }
    u->j_nest++;
    return 0;
}


static int
j_in_object(tp_usage_t *u)
{
    unsigned n = u->j_nest - 1;

    return (u->j_obj[n >> 3] >> (n & 7)) & 1;
}


/* a value ended: what may follow depends on the container */
static void
j_after_value(tp_usage_t *u)
{
    u->j_state = u->j_nest ? J_AFTER : J_DONE;
}


/* a string ended */
static void
j_string_end(tp_usage_t *u)
{
    if (u->j_key) {
        if (u->j_capture) {
            key_end(u);
        } else {
            u->j_skip_next = 0;         /* too deep: the old way, bounded */
        }
        u->j_state = J_COLON;
        return;
    }
    if (u->j_capture) {
        cb_string(u, u->j_tok, u->j_dst_len);
    }
    j_after_value(u);
}


static void
j_string_start(tp_usage_t *u, int key)
{
    u->j_key = key;
    if (key) {
        u->j_capture = key_begin(u);
    } else {
        u->j_capture = match_field(u) == F_MODEL;
        j_tok_begin(u);
    }
    if (!u->j_capture) {
        u->j_dst_cap = 0;               /* escapes write nothing */
    }
    u->j_state = J_STRING;
}


/* the bytes of a string before its next quote or backslash (all of them
 * when the buffer ends first): long texts go by sixteen bytes at a time */
static inline size_t
j_plain(const unsigned char *p, const unsigned char *end)
{
    return tp_find_any4(p, 0, (size_t) (end - p), '"', '\\', '"', '\\');
}


/* 0, or -1: not a JSON document */
static int
j_feed(tp_usage_t *u, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    unsigned char        c;
    unsigned             h;
    int                  skip;

    while (p < end) {
        c = *p;

        switch (u->j_state) {

        case J_STRING:
            /* the hot loop: the text of a reply is skipped or kept as is,
             * up to the next quote or backslash */
            {
                size_t run = j_plain(p, end);

                if (u->j_capture && u->j_dst_len < u->j_dst_cap) {
                    size_t room = u->j_dst_cap - u->j_dst_len;

                    if (run < room) {
                        room = run;
                    }
                    memcpy(u->j_dst + u->j_dst_len, p, room);
                    u->j_dst_len += room;
                }
                p += run;
                if (p == end) {
                    return 0;
                }
                c = *p;
            }
            p++;
            if (c == '\\') {
                u->j_state = J_ESC;
            } else {
                j_string_end(u);
            }
            continue;

        case J_ESC:
            p++;
            u->j_state = J_STRING;
            switch (c) {
            case '"': case '\\': case '/': j_put(u, c); break;
            case 'b': j_put(u, '\b'); break;
            case 'f': j_put(u, '\f'); break;
            case 'n': j_put(u, '\n'); break;
            case 'r': j_put(u, '\r'); break;
            case 't': j_put(u, '\t'); break;
            case 'u':
                u->j_state = J_UNI;
                u->j_uni = 0;
                u->j_uni_n = 0;
                break;
            default:
                return -1;
            }
            continue;

        case J_UNI:
            if (c >= '0' && c <= '9') {
                h = c - '0';
            } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
                h = (c | 0x20) - 'a' + 10;
            } else {
                return -1;
            }
            p++;
            u->j_uni = u->j_uni << 4 | h;
            if (++u->j_uni_n == 4) {
                j_put_uni(u, u->j_uni);
                u->j_state = J_STRING;
            }
            continue;

        case J_NUMBER:
            if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.'
                || c == 'e' || c == 'E')
            {
                j_put(u, c);
                p++;
                continue;
            }
            cb_number(u, (const char *) u->j_tok, u->j_dst_len);
            j_after_value(u);
            continue;                   /* c again, in the new state */

        case J_LITERAL:
            if (c >= 'a' && c <= 'z') {
                p++;
                continue;
            }
            j_after_value(u);
            continue;

        case J_SKIP:
            /* the other hot loop: only strings and brackets matter */
            {
                unsigned depth = u->j_skip_depth;
                int      str = u->j_skip_str, esc = u->j_skip_esc;

                for ( /* void */ ; p < end; p++) {
                    if (str && !esc) {
                        p += j_plain(p, end);
                        if (p == end) {
                            break;
                        }
                    }
                    c = *p;
                    if (str) {
                        if (esc) {
                            esc = 0;
                        } else if (c == '\\') {
                            esc = 1;
                        } else if (c == '"') {
                            str = 0;
                        }
                    } else if (c == '"') {
                        str = 1;
                    } else if (c == '{' || c == '[') {
                        depth++;
                    } else if ((c == '}' || c == ']') && --depth == 0) {
                        p++;
                        break;
                    }
                }
                u->j_skip_depth = depth;
                u->j_skip_str = str;
                u->j_skip_esc = esc;
                if (depth == 0) {
                    j_after_value(u);
                }
            }
            continue;

        case J_DONE:
            return 0;                   /* whatever follows is not read */

        default:
            break;
        }

        /* the structural states: whitespace between tokens */
        p++;
        if (j_ws(c)) {
            continue;
        }

        switch (u->j_state) {

        case J_VALUE_OR_END:
            if (c == ']') {
                u->j_nest--;
                cb_end(u);
                j_after_value(u);
                break;
            }
            /* fall through */

        case J_VALUE:
            skip = u->j_skip_next;
            u->j_skip_next = 0;         /* it was for this value only */
            if ((c == '{' || c == '[') && skip) {
                u->j_skip_depth = 1;
                u->j_skip_str = 0;
                u->j_skip_esc = 0;
                u->j_state = J_SKIP;
            } else if (c == '"') {
                j_string_start(u, 0);
            } else if (c == '{') {
                if (j_push(u, 1) != 0) {
                    return -1;
                }
                u->j_state = J_KEY_OR_END;
            } else if (c == '[') {
                if (j_push(u, 0) != 0) {
                    return -1;
                }
                u->j_state = J_VALUE_OR_END;
            } else if ((c >= '0' && c <= '9') || c == '-') {
                j_tok_begin(u);
                j_put(u, c);
                u->j_state = J_NUMBER;
            } else if (c == 't' || c == 'f' || c == 'n') {
                u->j_state = J_LITERAL;
            } else {
                return -1;
            }
            break;

        case J_KEY_OR_END:
            if (c == '}') {
                u->j_nest--;
                cb_end(u);
                j_after_value(u);
                break;
            }
            /* fall through */

        case J_KEY:
            if (c != '"') {
                return -1;
            }
            j_string_start(u, 1);
            break;

        case J_COLON:
            if (c != ':') {
                return -1;
            }
            u->j_state = J_VALUE;
            break;

        case J_AFTER:
            if (c == ',') {
                u->j_state = j_in_object(u) ? J_KEY : J_VALUE;
            } else if (c == (j_in_object(u) ? '}' : ']')) {
                u->j_nest--;
                cb_end(u);
                j_after_value(u);
            } else {
                return -1;
            }
            break;

        default:
            return -1;
        }
    }

    return 0;
}


static void
doc_begin(tp_usage_t *u)
{
    u->depth = 0;
    u->lost_depth = 0;
    u->path_len = 0;
    u->j_open = 1;
    u->j_failed = 0;
    u->j_state = J_VALUE;
    u->j_nest = 0;
    u->j_skip_next = 0;
    j_tok_begin(u);
}


static void
doc_feed(tp_usage_t *u, const unsigned char *p, size_t n)
{
    if (!u->j_open || u->j_failed || n == 0) {
        return;
    }
    if (j_feed(u, p, n) != 0) {
        /* "[DONE]", an HTML error page ...: not a document of ours */
        u->j_failed = 1;
    }
}


static void
doc_end(tp_usage_t *u)
{
    /* a number at the very end has no byte after it to end it */
    if (u->j_open && !u->j_failed && u->j_state == J_NUMBER) {
        cb_number(u, (const char *) u->j_tok, u->j_dst_len);
    }
    u->j_open = 0;
}


/* the first CR or LF from p, or end: memchr's speed for LF, the usual
 * line end, and a CR only looked for before it */
static const unsigned char *
line_end(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *lf, *cr;

    lf = memchr(p, '\n', end - p);
    if (lf == NULL) {
        lf = end;
    }
    cr = memchr(p, '\r', lf - p);
    return cr ? cr : lf;
}


/* p is where an event's data line ends: whether the blank line that ends
 * the event follows, so the line is the whole event */
static int
sse_whole(const unsigned char *p, const unsigned char *end)
{
    if (p == end) {
        return 0;
    }
    p += (*p == '\r' && p + 1 < end && p[1] == '\n') ? 2 : 1;
    return p < end && (*p == '\n' || *p == '\r');
}


/*
 * Whether an event can tell us anything: the model while it is unknown, or
 * a usage object ("usage": {...}, Gemini's "usageMetadata": {...}).  Most
 * events of a stream are text deltas ("usage": null in OpenAI's when usage
 * was asked for) and are skipped at memchr speed instead of tokenized:
 * that was two thirds of the cost of metering a stream.
 */
static int
sse_useful(tp_usage_t *u, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n, *q;

    if (u->model[0] == '\0') {
        return 1;
    }
    while ((q = memmem(p, end - p, "\"usage", 6)) != NULL) {
        q += 6;
        if (end - q >= 8 && memcmp(q, "Metadata", 8) == 0) {
            q += 8;
        }
        if (q < end && *q == '"') {
            for (q++; q < end && (j_ws(*q) || *q == ':'); q++) {
                /* void */
            }
            if (q < end && *q == '{') {
                return 1;
            }
        }
        p = q;
    }
    return 0;
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
                        u->event_fresh = 1;
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
            p = line_end(p, end);
            if (u->event_lines == 1 && u->event_fresh && sse_whole(p, end)
                && !sse_useful(u, start, p - start))
            {
                u->j_failed = 1;        /* a text delta: nothing for us */
            } else {
                doc_feed(u, start, p - start);
            }
            u->event_fresh = 0;
            if (p < end) {
                /* the line ended; the next one starts with a field */
                u->sse = SSE_FIELD;
                u->field_len = 0;
                u->after_cr = *p == '\r';
                p++;
            }
            break;

        case SSE_SKIP:
            p = line_end(p, end);
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
    if (!u->stream && u->j_open) {
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
    if (u->z_init) {
        inflateEnd(&u->z);
    }
    u->a.free(u->a.ctx, u);
}
