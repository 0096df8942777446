/* trueport_prompt.c - request-body text extraction and redaction.
 *
 * One pass of a strict JSON scanner over the body; a small table of key
 * paths per provider (parent state, key -> child state, what a string or
 * number there is) decides which string values are text, which is the
 * model and which are token limits, so nothing but the text itself is
 * copied. Redaction writes the body again, rewriting only the string
 * values that hold a redacted span. */
#include "trueport_prompt.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ARENA_BLOCK  8192
#define ALIGN16(n)   (((n) + 15) & ~(size_t) 15)

struct tp_arena_block_s {
    tp_arena_block_t *next;
    size_t            size;
};

#define ARENA_HDR    ALIGN16(sizeof(tp_arena_block_t))


void
tp_arena_init(tp_arena_t *ar, const tp_alloc_t *a)
{
    ar->a = *a;
    ar->blocks = NULL;
    ar->pos = ar->end = NULL;
}


void *
tp_arena_alloc(tp_arena_t *ar, size_t n)
{
    tp_arena_block_t *b;
    unsigned char    *p;
    size_t            size;

    if (n > SIZE_MAX / 4) {
        return NULL;
    }
    n = ALIGN16(n ? n : 1);
    if ((size_t) (ar->end - ar->pos) >= n) {
        p = ar->pos;
        ar->pos += n;
        return p;
    }

    size = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
    b = ar->a.alloc(ar->a.ctx, ARENA_HDR + size);
    if (b == NULL) {
        return NULL;
    }
    b->size = size;
    p = (unsigned char *) b + ARENA_HDR;

    if (size == n && ar->blocks != NULL) {
        /* a big piece gets its own block; the current one stays open */
        b->next = ar->blocks->next;
        ar->blocks->next = b;
        return p;
    }
    b->next = ar->blocks;
    ar->blocks = b;
    ar->pos = p + n;
    ar->end = p + size;
    return p;
}


char *
tp_arena_strndup(tp_arena_t *ar, const char *s, size_t n)
{
    char *d = tp_arena_alloc(ar, n + 1);

    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}


/* the arena may live in its own first block: nothing of it is touched
 * once the freeing starts */
void
tp_arena_free(tp_arena_t *ar)
{
    tp_arena_block_t *b = ar->blocks, *next;
    tp_alloc_t        a = ar->a;

    ar->blocks = NULL;
    ar->pos = ar->end = NULL;
    for ( ; b; b = next) {
        next = b->next;
        a.free(a.ctx, b);
    }
}


/* ---- UTF-8 ---- */

static size_t
utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], lo = 0x80, hi = 0xbf;
    size_t   avail = end - p;

    if (c < 0xc2) {
        return 0;
    }
    if (c < 0xe0) {
        return avail >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    }
    if (c < 0xf0) {
        if (c == 0xe0) {
            lo = 0xa0;
        } else if (c == 0xed) {
            hi = 0x9f;          /* UTF-16 surrogates are not characters */
        }
        return avail >= 3 && p[1] >= lo && p[1] <= hi
               && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c < 0xf5) {
        if (c == 0xf0) {
            lo = 0x90;
        } else if (c == 0xf4) {
            hi = 0x8f;
        }
        return avail >= 4 && p[1] >= lo && p[1] <= hi
               && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0;
}


/* decodes the code point at t[i] of valid UTF-8; *len gets its length */
static uint32_t
utf8_get(const unsigned char *t, size_t n, size_t i, size_t *len)
{
    unsigned c = t[i];

    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (c < 0xe0 && i + 1 < n) {
        *len = 2;
        return ((c & 0x1f) << 6) | (t[i + 1] & 0x3f);
    }
    if (c < 0xf0 && i + 2 < n) {
        *len = 3;
        return ((c & 0x0f) << 12) | ((t[i + 1] & 0x3f) << 6)
               | (t[i + 2] & 0x3f);
    }
    if (i + 3 < n) {
        *len = 4;
        return ((c & 0x07) << 18) | ((t[i + 1] & 0x3f) << 12)
               | ((t[i + 2] & 0x3f) << 6) | (t[i + 3] & 0x3f);
    }
    *len = 1;
    return 0xfffd;
}


static size_t
utf8_put(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char) cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char) (0xc0 | (cp >> 6));
        o[1] = (unsigned char) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char) (0xe0 | (cp >> 12));
        o[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char) (0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char) (0xf0 | (cp >> 18));
    o[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char) (0x80 | (cp & 0x3f));
    return 4;
}


/* Simple lower-casing that keeps the encoded length, so folded text has the
 * offsets of the original. */
uint32_t
tp_utf8_fold(uint32_t c)
{
    if (c < 0x80) {
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    }
    if (c < 0x100) {
        return c >= 0xc0 && c <= 0xde && c != 0xd7 ? c + 32 : c;
    }
    if (c < 0x180) {                                   /* Latin Extended-A */
        if (c == 0x130 || c == 0x131 || c == 0x138 || c == 0x149) {
            return c;
        }
        if (c == 0x178) {
            return 0xff;
        }
        if (c <= 0x137 || (c >= 0x14a && c <= 0x177)) {
            return c | 1;
        }
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) {
            return c & 1 ? c + 1 : c;
        }
        return c;
    }
    if (c >= 0x386 && c <= 0x3a9) {                    /* Greek */
        if (c >= 0x391 && c != 0x3a2) {
            return c + 32;
        }
        switch (c) {
        case 0x386: return 0x3ac;
        case 0x388: case 0x389: case 0x38a: return c + 37;
        case 0x38c: return 0x3cc;
        case 0x38e: case 0x38f: return c + 63;
        }
        return c;
    }
    if (c == 0x3c2) {
        return 0x3c3;                                  /* final sigma */
    }
    if (c >= 0x400 && c <= 0x42f) {                    /* Cyrillic */
        return c < 0x410 ? c + 80 : c + 32;
    }
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf)) {
        return c | 1;
    }
    return c;
}


/* Letters, digits and '_' of the scripts that separate words with spaces.
 * Punctuation, symbols, emoji and CJK (no spaces between words) are not
 * word characters, so a keyword can match inside CJK text. */
int
tp_utf8_is_word(uint32_t c)
{
    if (c < 0x80) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
               || (c >= '0' && c <= '9') || c == '_';
    }
    if (c < 0xc0) {
        return c == 0xaa || c == 0xb5 || c == 0xba;
    }
    if (c < 0x2000) {
        switch (c) {
        case 0xd7: case 0xf7:                          /* x, divide */
        case 0x37e: case 0x387:                        /* Greek ; and . */
        case 0x589: case 0x5be: case 0x5c0: case 0x5c3: case 0x5f3:
        case 0x5f4:
        case 0x60c: case 0x60d: case 0x61b: case 0x61f: case 0x66a:
        case 0x66b: case 0x66c: case 0x66d: case 0x6d4:
        case 0x964: case 0x965: case 0x1680:
            return 0;
        }
        return 1;
    }
    return c >= 0xac00 && c <= 0xd7a3;                 /* Hangul */
}


int
tp_utf8_word_before(const unsigned char *t, size_t i)
{
    size_t j, len;

    if (i == 0) {
        return 0;
    }
    j = i - 1;
    while (j > 0 && i - j < 4 && (t[j] & 0xc0) == 0x80) {
        j--;
    }
    return tp_utf8_is_word(utf8_get(t, i, j, &len));
}


int
tp_utf8_word_at(const unsigned char *t, size_t n, size_t i)
{
    size_t len;

    return i < n && tp_utf8_is_word(utf8_get(t, n, i, &len));
}


void
tp_utf8_fold_buf(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t   i = 0, len;
    uint32_t cp, f;

    while (i < n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint64_t x, ge_a, gt_z;

        if (n - i >= 8) {
            memcpy(&x, in + i, 8);
            if (!(x & 0x8080808080808080ULL)) {
                /* eight ASCII bytes: set 0x20 on those in A..Z */
                ge_a = x + 0x0101010101010101ULL * (0x80 - 'A');
                gt_z = x + 0x0101010101010101ULL * (0x7f - 'Z');
                x |= (ge_a & ~gt_z & 0x8080808080808080ULL) >> 2;
                memcpy(out + i, &x, 8);
                i += 8;
                continue;
            }
        }
#endif
        if (in[i] < 0x80) {
            out[i] = in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i];
            i++;
            continue;
        }
        cp = utf8_get(in, n, i, &len);
        if (len == 2) {
            /* only two-byte characters have a case we fold */
            f = tp_utf8_fold(cp);
            out[i] = (unsigned char) (0xc0 | (f >> 6));
            out[i + 1] = (unsigned char) (0x80 | (f & 0x3f));
            i += 2;
            continue;
        }
        while (len--) {
            out[i] = in[i];
            i++;
        }
    }
}


/* ---- JSON scanner ---- */

/* bytes a string can hold as they are: printable ASCII but " and \ */
#define PLAIN(c)  ((c) >= 0x20 && (c) < 0x80 && (c) != '"' && (c) != '\\')


static int
hexval(unsigned c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? (int) c - 'a' + 10 : -1;
}


static int
hex4(const unsigned char *p)
{
    int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]),
        d = hexval(p[3]);

    if ((a | b | c | d) < 0) {
        return -1;
    }
    return (a << 12) | (b << 8) | (c << 4) | d;
}


#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* bytes a string holds as they are, sixteen at a time with SSE2 (else
 * eight) while none is ", \, a control character or non-ASCII */
static const unsigned char *
skip_plain(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    __m128i  x, bad;
    unsigned bits;

    while (end - p >= 16) {
        x = _mm_loadu_si128((const __m128i *) p);
        /* signed: bytes >= 0x80 are negative, so below 0x20 too */
        bad = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
                           _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                        _mm_cmpeq_epi8(x,
                                                       _mm_set1_epi8('\\'))));
        bits = (unsigned) _mm_movemask_epi8(bad);
        if (bits) {
            return p + __builtin_ctz(bits);
        }
        p += 16;
    }
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t x, q, b;

    while (end - p >= 8) {
        memcpy(&x, p, 8);
        q = x ^ (ONES * '"');
        b = x ^ (ONES * '\\');
        if (((x - ONES * 0x20) | (q - ONES) | (b - ONES) | x) & HIGHS) {
            break;
        }
        p += 8;
    }
#endif
    while (p < end && PLAIN(*p)) {
        p++;
    }
    return p;
}


#define FAIL(...) do {                                                  \
    if (errlen) snprintf(err, errlen, __VA_ARGS__);                     \
    return -1;                                                          \
} while (0)

/* *pp at the opening quote; on return at the closing one */
static int
scan_string(const unsigned char *buf, const unsigned char **pp,
            const unsigned char *end, int *escaped, char *err, size_t errlen)
{
    const unsigned char *p = *pp + 1;
    size_t               n;
    int                  esc = 0;

    for ( ;; ) {
        p = skip_plain(p, end);
        if (p == end) {
            FAIL("unterminated string at offset %zu", (size_t) (*pp - buf));
        }
        if (*p == '"') {
            break;
        }
        if (*p == '\\') {
            esc = 1;
            if (end - p < 2) {
                FAIL("unterminated string at offset %zu",
                     (size_t) (*pp - buf));
            }
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n':
            case 'r': case 't':
                p += 2;
                continue;
            case 'u':
                if (end - p < 6 || hex4(p + 2) < 0) {
                    FAIL("bad \\u escape at offset %zu", (size_t) (p - buf));
                }
                p += 6;
                continue;
            }
            FAIL("bad escape at offset %zu", (size_t) (p - buf));
        }
        if (*p < 0x20) {
            FAIL("control character in a string at offset %zu",
                 (size_t) (p - buf));
        }
        if (*p >= 0xc2 && *p < 0xe0 && end - p >= 2 && (p[1] & 0xc0) == 0x80) {
            p += 2;                         /* Latin, Greek, Cyrillic ... */
            continue;
        }
        n = utf8_seq(p, end);
        if (n == 0) {
            FAIL("invalid UTF-8 at offset %zu", (size_t) (p - buf));
        }
        p += n;
    }
    *escaped = esc;
    *pp = p;
    return 0;
}


static const unsigned char *
scan_number(const unsigned char *p, const unsigned char *end)
{
    if (p < end && *p == '-') {
        p++;
    }
    if (p == end) {
        return NULL;
    }
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        p++;
        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    return p;
}


enum { J_VALUE, J_ARRAY_FIRST, J_OBJECT_FIRST, J_KEY, J_AFTER };

int
tp_json_scan(const unsigned char *buf, size_t len, const tp_json_cb_t *cb,
             void *ctx, char *err, size_t errlen)
{
    const unsigned char *p = buf, *end = buf + len, *q;
    unsigned char        stack[TP_JSON_MAX_DEPTH];
    int                  depth = 0, state = J_VALUE, rc, escaped, array;

    for ( ;; ) {
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\r'
                           || *p == '\t'))
        {
            p++;
        }

        switch (state) {

        case J_AFTER:
            if (depth == 0) {
                if (p != end) {
                    FAIL("unexpected data after the JSON value at offset %zu",
                         (size_t) (p - buf));
                }
                return 0;
            }
            if (p == end) {
                FAIL("unexpected end of JSON");
            }
            array = stack[depth - 1];
            if (*p == ',') {
                p++;
                state = array ? J_VALUE : J_KEY;
                continue;
            }
            if (*p == (array ? ']' : '}')) {
                p++;
                depth--;
                if (cb->end && (rc = cb->end(ctx, array)) != 0) {
                    return rc;
                }
                continue;
            }
            FAIL("expected ',' or '%c' at offset %zu", array ? ']' : '}',
                 (size_t) (p - buf));

        case J_OBJECT_FIRST:
        case J_KEY:
            if (p == end) {
                FAIL("unexpected end of JSON");
            }
            if (state == J_OBJECT_FIRST && *p == '}') {
                p++;
                depth--;
                if (cb->end && (rc = cb->end(ctx, 0)) != 0) {
                    return rc;
                }
                state = J_AFTER;
                continue;
            }
            if (*p != '"') {
                FAIL("expected a key at offset %zu", (size_t) (p - buf));
            }
            q = p;
            if (scan_string(buf, &q, end, &escaped, err, errlen) != 0) {
                return -1;
            }
            if (cb->key
                && (rc = cb->key(ctx, p + 1, q - p - 1, escaped)) != 0)
            {
                return rc;
            }
            p = q + 1;
            while (p < end && (*p == ' ' || *p == '\n' || *p == '\r'
                               || *p == '\t'))
            {
                p++;
            }
            if (p == end || *p != ':') {
                FAIL("expected ':' at offset %zu", (size_t) (p - buf));
            }
            p++;
            state = J_VALUE;
            continue;

        case J_ARRAY_FIRST:
            if (p < end && *p == ']') {
                p++;
                depth--;
                if (cb->end && (rc = cb->end(ctx, 1)) != 0) {
                    return rc;
                }
                state = J_AFTER;
                continue;
            }
            /* fall through */

        case J_VALUE:
            if (p == end) {
                FAIL("unexpected end of JSON");
            }
            switch (*p) {

            case '{':
            case '[':
                if (depth == TP_JSON_MAX_DEPTH) {
                    FAIL("JSON nested too deeply at offset %zu",
                         (size_t) (p - buf));
                }
                array = *p == '[';
                stack[depth++] = (unsigned char) array;
                p++;
                if (cb->start && (rc = cb->start(ctx, array)) != 0) {
                    return rc;
                }
                state = array ? J_ARRAY_FIRST : J_OBJECT_FIRST;
                continue;

            case '"':
                q = p;
                if (scan_string(buf, &q, end, &escaped, err, errlen) != 0) {
                    return -1;
                }
                if (cb->string
                    && (rc = cb->string(ctx, p + 1, q - p - 1, escaped)) != 0)
                {
                    return rc;
                }
                p = q + 1;
                break;

            case 't':
            case 'f':
            case 'n':
                rc = *p == 't' ? TP_JSON_TRUE
                     : *p == 'f' ? TP_JSON_FALSE : TP_JSON_NULL;
                {
                    const char *lit = rc == TP_JSON_TRUE ? "true"
                                      : rc == TP_JSON_FALSE ? "false" : "null";
                    size_t      n = strlen(lit);

                    if ((size_t) (end - p) < n || memcmp(p, lit, n) != 0) {
                        FAIL("invalid literal at offset %zu",
                             (size_t) (p - buf));
                    }
                    p += n;
                }
                if (cb->literal && (rc = cb->literal(ctx, rc)) != 0) {
                    return rc;
                }
                break;

            default:
                q = scan_number(p, end);
                if (q == NULL) {
                    FAIL("unexpected character at offset %zu",
                         (size_t) (p - buf));
                }
                if (cb->number && (rc = cb->number(ctx, p, q - p)) != 0) {
                    return rc;
                }
                p = q;
                break;
            }
            state = J_AFTER;
            continue;
        }
    }
}


size_t
tp_json_unescape(const unsigned char *raw, size_t len, unsigned char *out)
{
    const unsigned char *p = raw, *end = raw + len, *bs;
    unsigned char       *o = out;
    int                  cp, lo;

    while (p < end) {
        bs = memchr(p, '\\', end - p);
        if (bs == NULL) {
            memcpy(o, p, end - p);
            o += end - p;
            break;
        }
        memcpy(o, p, bs - p);
        o += bs - p;
        p = bs;

        switch (p[1]) {
        case 'b': *o++ = '\b'; p += 2; continue;
        case 'f': *o++ = '\f'; p += 2; continue;
        case 'n': *o++ = '\n'; p += 2; continue;
        case 'r': *o++ = '\r'; p += 2; continue;
        case 't': *o++ = '\t'; p += 2; continue;
        case 'u': break;
        default:  *o++ = p[1]; p += 2; continue;     /* " \ / */
        }

        cp = hex4(p + 2);
        p += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            } else {
                cp = 0xfffd;
            }
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            cp = 0xfffd;
        }
        o += utf8_put(o, (uint32_t) cp);
    }
    return o - out;
}


/* ---- extraction ----
 *
 * A deny-list walk: under an endpoint the walk understands, every string
 * value is text the model may read, except those of a few keys that hold
 * identifiers, enums, opaque tokens or binary data (key_classes below).
 * A few states mark what more is known at a place: the request itself
 * (its model and token limits), the requests of a batch, and free-form
 * JSON (tool input and schemas), where keys are text too and nothing is
 * denied. A key the walk does not know is text: a field the providers add
 * tomorrow is read, not skipped. */

enum {
    S_NONE = 0,      /* after the root: nothing */
    S_API,           /* an object or array of the provider's API */
    S_DENY,          /* an array under a denied key: its strings */
    S_FREE,          /* free-form JSON: keys and strings are text */
    S_ROOT,          /* the request */
    S_NROOT,         /* a request inside a batch */
    S_NROOTS,        /* an array of them (Gemini's requests) */
    S_AREQS,         /* Anthropic's batch: requests[] */
    S_AREQ,          /*   {custom_id, params} */
    S_GENCFG,        /* Gemini's generationConfig */
    S_ANYAPI         /* in specials[]: any state but S_FREE */
};

enum {
    L_NONE = 0,
    L_TEXT,          /* a text segment */
    L_PART,          /* text joined to its siblings in a parts array */
    L_MODEL,
    L_NMODEL,        /* the model of a request inside a batch */
    L_MAXTOK,
    L_TYPE,          /* an object's "type": not text, may make "data" so */
    L_DATA,          /* text unless its object holds binary data */
    L_URL            /* text unless a data: URL */
};

/* what a key of an API object is */
enum { K_TEXT = 0, K_PART, K_DENY, K_TYPE, K_FREE, K_DATA, K_URL, K_BLOB };

#define P_ALL  ((1 << TP_PROVIDERS) - 1)
#define P_OA   ((1 << TP_OPENAI) | (1 << TP_AZURE))
#define P_AN   (1 << TP_ANTHROPIC)
#define P_GO   (1 << TP_GOOGLE)

typedef struct {
    const char *key;
    uint8_t     len;
    uint8_t     cls;
    uint8_t     providers;
} key_class_t;

#define KC(k, c, p)  { k, sizeof(k) - 1, c, p }

/* Every other key is K_TEXT, and so is every key ending in "_id" or
 * "_ids" K_DENY. Denied keys hold no text the model reads, and rewriting
 * them would break the request (an id that must match another, an enum,
 * a signature); only their string values are skipped, so an object put
 * under one is still read. */
static const key_class_t key_classes[] = {
    KC("text", K_PART, P_ALL),
    KC("type", K_TYPE, P_ALL),

    KC("id", K_DENY, P_ALL),
    KC("role", K_DENY, P_ALL),
    KC("model", K_DENY, P_ALL),          /* the request's own: specials[] */
    KC("object", K_DENY, P_ALL),
    KC("status", K_DENY, P_ALL),
    KC("user", K_DENY, P_ALL),
    KC("safety_identifier", K_DENY, P_ALL),
    KC("prompt_cache_key", K_DENY, P_ALL),
    KC("conversation", K_DENY, P_ALL),
    KC("service_tier", K_DENY, P_ALL),
    KC("reasoning_effort", K_DENY, P_ALL),
    KC("effort", K_DENY, P_ALL),
    KC("verbosity", K_DENY, P_ALL),
    KC("truncation", K_DENY, P_ALL),
    KC("tool_choice", K_DENY, P_ALL),
    KC("modalities", K_DENY, P_ALL),
    KC("include", K_DENY, P_ALL),
    KC("detail", K_DENY, P_ALL),
    KC("format", K_DENY, P_ALL),
    KC("encoding_format", K_DENY, P_ALL),
    KC("media_type", K_DENY, P_ALL),
    KC("mime_type", K_DENY, P_ALL),
    KC("mimeType", K_DENY, P_ALL),
    KC("voice", K_DENY, P_ALL),
    KC("ttl", K_DENY, P_ALL),
    KC("completion_window", K_DENY, P_ALL),
    KC("signature", K_DENY, P_ALL),
    KC("encrypted_content", K_DENY, P_ALL),
    KC("file_data", K_DENY, P_ALL),      /* base64 or a data: URL */
    KC("thoughtSignature", K_DENY, P_GO),
    KC("thought_signature", K_DENY, P_GO),
    KC("cachedContent", K_DENY, P_GO),
    KC("cached_content", K_DENY, P_GO),
    KC("responseMimeType", K_DENY, P_GO),
    KC("response_mime_type", K_DENY, P_GO),
    KC("responseModalities", K_DENY, P_GO),
    KC("response_modalities", K_DENY, P_GO),
    KC("mediaResolution", K_DENY, P_GO),
    KC("media_resolution", K_DENY, P_GO),
    KC("taskType", K_DENY, P_GO),
    KC("task_type", K_DENY, P_GO),
    KC("category", K_DENY, P_GO),
    KC("threshold", K_DENY, P_GO),
    KC("mode", K_DENY, P_GO),
    KC("language", K_DENY, P_GO),
    KC("outcome", K_DENY, P_GO),

    /* free-form JSON: tool input and arguments, JSON schemas */
    KC("input", K_FREE, P_AN),           /* OpenAI's is the request's input */
    KC("input_schema", K_FREE, P_ALL),
    KC("parameters", K_FREE, P_ALL),
    KC("arguments", K_FREE, P_ALL),
    KC("schema", K_FREE, P_ALL),
    KC("args", K_FREE, P_GO),
    KC("response", K_FREE, P_GO),
    KC("parametersJsonSchema", K_FREE, P_GO),
    KC("parameters_json_schema", K_FREE, P_GO),
    KC("responseSchema", K_FREE, P_GO),
    KC("response_schema", K_FREE, P_GO),
    KC("responseJsonSchema", K_FREE, P_GO),
    KC("response_json_schema", K_FREE, P_GO),

    KC("data", K_DATA, P_ALL),
    KC("url", K_URL, P_ALL),
    KC("image_url", K_URL, P_ALL),
    KC("file_url", K_URL, P_ALL),
    KC("audio_url", K_URL, P_ALL),
    KC("fileUri", K_URL, P_GO),
    KC("file_uri", K_URL, P_GO),

    /* objects whose "data" is base64 */
    KC("inlineData", K_BLOB, P_GO),
    KC("inline_data", K_BLOB, P_GO),
    KC("input_audio", K_BLOB, P_OA)
};

/* keys whose meaning depends on where they are */
typedef struct {
    uint8_t     parent;
    uint8_t     providers;
    const char *key;
    uint8_t     child;
    uint8_t     leaf;
} special_t;

static const special_t specials[] = {
    { S_ROOT, P_ALL, "model", S_DENY, L_MODEL },
    { S_ROOT, P_OA | P_AN, "max_tokens", S_API, L_MAXTOK },
    { S_ROOT, P_OA, "max_completion_tokens", S_API, L_MAXTOK },
    { S_ROOT, P_OA, "max_output_tokens", S_API, L_MAXTOK },
    { S_ROOT, P_AN, "max_tokens_to_sample", S_API, L_MAXTOK },

    /* Anthropic's batches: requests[].params is a request */
    { S_ROOT, P_AN, "requests", S_AREQS, L_TEXT },
    { S_AREQ, P_AN, "params", S_NROOT, L_TEXT },
    { S_NROOT, P_AN | P_GO, "model", S_DENY, L_NMODEL },
    { S_NROOT, P_AN, "max_tokens", S_API, L_MAXTOK },
    { S_NROOT, P_AN, "max_tokens_to_sample", S_API, L_MAXTOK },

    /* Gemini: requests[] of batchEmbedContents, the request of
     * batchGenerateContent's inlined requests and of countTokens */
    { S_ROOT, P_GO, "requests", S_NROOTS, L_TEXT },
    { S_ANYAPI, P_GO, "request", S_NROOT, L_TEXT },
    { S_ANYAPI, P_GO, "generateContentRequest", S_NROOT, L_TEXT },
    { S_ANYAPI, P_GO, "generate_content_request", S_NROOT, L_TEXT },
    { S_ROOT, P_GO, "generationConfig", S_GENCFG, L_TEXT },
    { S_ROOT, P_GO, "generation_config", S_GENCFG, L_TEXT },
    { S_NROOT, P_GO, "generationConfig", S_GENCFG, L_TEXT },
    { S_NROOT, P_GO, "generation_config", S_GENCFG, L_TEXT },
    { S_GENCFG, P_GO, "maxOutputTokens", S_API, L_MAXTOK },
    { S_GENCFG, P_GO, "max_output_tokens", S_API, L_MAXTOK },
    { S_NONE, 0, NULL, 0, 0 }
};

typedef struct {
    uint8_t  state;
    uint8_t  array;
    uint8_t  binary;     /* object: its "data" is not text */
    uint8_t  typed;      /* object: it has a "type" */
    uint32_t arr_id;
    uint32_t tent;       /* object: 1 + its last entry in ex_t.tent */
} frame_t;

/* a "data" read as text before its object's "type" was known */
typedef struct {
    uint32_t off;
    uint32_t prev;       /* 1 + the object's entry before, 0 none */
} tent_t;

typedef struct {
    tp_prompt_t       *p;
    unsigned           pmask;               /* 1 << provider */
    frame_t            st[TP_JSON_MAX_DEPTH];
    int                depth;
    uint8_t            pend_state, pend_leaf;   /* the next value of an */
    uint8_t            pend_blob;               /*   object */
    uint32_t           arr_ids;
    uint32_t           last_join;           /* of the last segment, 0 none */
    size_t             text_cap;
    int                root_done;
    char              *nmodel;              /* of the batch's requests */

    /* "data" before "type": pass 1 reads it as text; when the type says
     * base64, its offset goes to skip[] and pass 2 reads the body again
     * without it, so segments stay in body order */
    int                pass;
    int                again;
    tent_t            *tent;
    uint32_t           ntent, tent_cap;
    uint32_t          *skip;
    uint32_t           nskip, skip_cap, skip_i;

    char              *err;
    size_t             errlen;
} ex_t;

#define EX_EMALFORMED  (-10)
#define EX_ENOMEM      (-11)


/* k (NUL-ended) is the klen bytes of key; most keys differ at once */
static int
key_is(const char *k, const unsigned char *key, size_t klen)
{
    size_t i;

    for (i = 0; i < klen && k[i] != '\0' && k[i] == (char) key[i]; i++) {
        /* void */
    }
    return i == klen && k[i] == '\0';
}


static int
key_class(ex_t *x, const unsigned char *key, size_t klen)
{
    const key_class_t *k;
    size_t             i;

    for (i = 0; i < sizeof(key_classes) / sizeof(key_classes[0]); i++) {
        k = &key_classes[i];
        if (k->len == klen && (k->providers & x->pmask)
            && memcmp(k->key, key, klen) == 0)
        {
            return k->cls;
        }
    }
    if ((klen > 3 && memcmp(key + klen - 3, "_id", 3) == 0)
        || (klen > 4 && memcmp(key + klen - 4, "_ids", 4) == 0))
    {
        return K_DENY;
    }
    return K_TEXT;
}


/* what the value of key (NULL: an array element) under parent is */
static void
lookup(ex_t *x, uint8_t parent, const unsigned char *key, size_t klen,
       uint8_t *child, uint8_t *leaf, uint8_t *blob)
{
    const special_t *sp;

    *blob = 0;
    *child = S_API;
    *leaf = L_TEXT;

    if (parent == S_NONE) {
        *child = S_NONE;
        *leaf = L_NONE;
        return;
    }
    if (parent == S_FREE) {
        *child = S_FREE;
        return;
    }
    if (key == NULL) {
        switch (parent) {
        case S_DENY:
            *child = S_DENY;
            *leaf = L_NONE;
            break;
        case S_AREQS:
            *child = S_AREQ;
            break;
        case S_NROOTS:
            *child = S_NROOT;
            break;
        }
        return;
    }

    for (sp = specials; sp->key != NULL; sp++) {
        if ((sp->parent == parent || sp->parent == S_ANYAPI)
            && (sp->providers & x->pmask) && key_is(sp->key, key, klen))
        {
            *child = sp->child;
            *leaf = sp->leaf;
            return;
        }
    }

    switch (key_class(x, key, klen)) {
    case K_PART:
        *leaf = L_PART;
        break;
    case K_DENY:
        *child = S_DENY;
        *leaf = L_NONE;
        break;
    case K_TYPE:
        *child = S_DENY;
        *leaf = L_TYPE;
        break;
    case K_FREE:
        *child = S_FREE;
        break;
    case K_DATA:
        *leaf = L_DATA;
        break;
    case K_URL:
        *leaf = L_URL;
        break;
    case K_BLOB:
        *blob = 1;
        break;
    }
}


/* what the value about to be scanned is; *join is set for L_PART */
static void
target(ex_t *x, uint8_t *state, uint8_t *leaf, uint32_t *join, uint8_t *blob)
{
    frame_t *top;

    *join = 0;
    *blob = 0;
    if (x->depth == 0) {
        *state = x->root_done ? S_NONE : S_ROOT;
        *leaf = L_NONE;
        return;
    }
    top = &x->st[x->depth - 1];
    if (top->array) {
        lookup(x, top->state, NULL, 0, state, leaf, blob);
    } else {
        *state = x->pend_state;
        *leaf = x->pend_leaf;
        *blob = x->pend_blob;
        x->pend_state = S_NONE;
        x->pend_leaf = L_NONE;
        x->pend_blob = 0;
    }
    if (*leaf == L_PART && x->depth >= 2 && x->st[x->depth - 2].array) {
        *join = x->st[x->depth - 2].arr_id;
    }
}


static int
ex_fail(ex_t *x, const char *msg)
{
    if (x->errlen) {
        snprintf(x->err, x->errlen, "%s", msg);
    }
    return EX_EMALFORMED;
}


static int
ex_start(void *ctx, int array)
{
    ex_t    *x = ctx;
    frame_t *f;
    uint8_t  state, leaf, blob;
    uint32_t join;

    if (x->depth == 0 && array) {
        return ex_fail(x, "the request body must be a JSON object");
    }
    target(x, &state, &leaf, &join, &blob);
    if (state == S_DENY && !array) {
        state = S_API;                  /* only strings are denied */
    }
    f = &x->st[x->depth];
    f->state = state;
    f->array = (uint8_t) array;
    f->arr_id = array ? ++x->arr_ids : 0;
    f->binary = blob && !array;
    f->typed = 0;
    f->tent = 0;
    x->depth++;
    return 0;
}


/* pass 1: the tentative "data" of an object that turned out binary are
 * skipped by pass 2 */
static int
ex_end(void *ctx, int array)
{
    ex_t     *x = ctx;
    frame_t  *f = &x->st[x->depth - 1];
    uint32_t  t, *ns, cap;

    if (!array && f->binary && f->tent && x->pass == 1) {
        for (t = f->tent; t; t = x->tent[t - 1].prev) {
            if (x->nskip == x->skip_cap) {
                cap = x->skip_cap ? x->skip_cap * 2 : 16;
                ns = tp_arena_alloc(&x->p->arena, cap * sizeof(*ns));
                if (ns == NULL) {
                    return EX_ENOMEM;
                }
                if (x->nskip) {
                    memcpy(ns, x->skip, x->nskip * sizeof(*ns));
                }
                x->skip = ns;
                x->skip_cap = cap;
            }
            x->skip[x->nskip++] = x->tent[t - 1].off;
        }
        x->again = 1;
    }
    if (--x->depth == 0) {
        x->root_done = 1;
    }
    return 0;
}


static int add_segment(ex_t *x, const unsigned char *raw, size_t len,
                       int escaped, uint32_t join);

static int
ex_key(void *ctx, const unsigned char *raw, size_t len, int escaped)
{
    ex_t          *x = ctx;
    frame_t       *top = &x->st[x->depth - 1];
    unsigned char  kbuf[6 * 64];        /* decoded keys up to 64 bytes */

    x->pend_blob = 0;
    if (top->state == S_NONE) {
        x->pend_state = S_NONE;
        x->pend_leaf = L_NONE;
        return 0;
    }
    if (top->state == S_FREE) {
        x->pend_state = S_FREE;
        x->pend_leaf = L_TEXT;
        return add_segment(x, raw, len, escaped, 0);
    }
    if (escaped) {
        if (len > sizeof(kbuf)) {
            /* longer than any key the walk knows: text */
            x->pend_state = S_API;
            x->pend_leaf = L_TEXT;
            return 0;
        }
        len = tp_json_unescape(raw, len, kbuf);
        raw = kbuf;
    }
    lookup(x, top->state, raw, len, &x->pend_state, &x->pend_leaf,
           &x->pend_blob);
    if (x->pend_leaf == L_TYPE) {
        /* a second "type" could say base64 to the walk and text to the
         * provider (JSON parsers keep the last) */
        if (top->typed) {
            return ex_fail(x, "duplicate \"type\" field");
        }
        top->typed = 1;
    }
    return 0;
}


/* code points in t[0..n) of valid UTF-8: the bytes but continuation bytes
 * (10xxxxxx), counted sixteen (SSE2) or eight at a time; *non_ascii is set
 * when a byte is */
static size_t
utf8_count(const unsigned char *t, size_t n, int *non_ascii)
{
    size_t   i = 0, cont = 0;
    uint64_t x, any = 0;

#if defined(__SSE2__)
    __m128i  v;
    unsigned high;

    for (; n - i >= 16; i += 16) {
        v = _mm_loadu_si128((const __m128i *) (t + i));
        high = (unsigned) _mm_movemask_epi8(v);
        if (high == 0) {
            continue;                                /* all ASCII */
        }
        any = HIGHS;
        /* signed: 0x80..0xbf are -128..-65, below 0xc0 (-64) */
        cont += __builtin_popcount((unsigned) _mm_movemask_epi8(
                    _mm_cmplt_epi8(v, _mm_set1_epi8((char) 0xc0))));
    }
#endif
    for (; n - i >= 8; i += 8) {
        memcpy(&x, t + i, 8);
        any |= x;
        /* bit 7 set and bit 6 clear, as 0/1 per byte, summed by the
         * multiply into the top byte (at most 8, no carry) */
        cont += ((x & ~(x << 1) & HIGHS) >> 7) * ONES >> 56;
    }
    for (; i < n; i++) {
        any |= t[i];
        cont += (t[i] & 0xc0) == 0x80;
    }
    if (any & HIGHS) {
        *non_ascii = 1;
    }
    return n - cont;
}


static int
add_segment(ex_t *x, const unsigned char *raw, size_t len, int escaped,
            uint32_t join)
{
    tp_prompt_t         *p = x->p;
    tp_segment_t        *s;
    size_t               off, n;
    int                  sep;

    if (len == 0) {
        return 0;
    }
    sep = p->nsegs > 0 && !(join != 0 && join == x->last_join);
    off = p->text_len + sep;
    if (off + len + 2 > x->text_cap) {
        /* decoded text plus separators never exceeds the body (a segment
         * loses at least its two quotes): grow towards that bound */
        size_t         cap = x->text_cap * 2;
        unsigned char *nt;

        if (cap < off + len + 2) {
            cap = off + len + 2;
        }
        if (cap > p->body_len + 1) {
            cap = p->body_len + 1;
        }
        if (cap < off + len + 2) {
            return EX_ENOMEM;               /* cannot happen, see above */
        }
        nt = tp_arena_alloc(&p->arena, cap);
        if (nt == NULL) {
            return EX_ENOMEM;
        }
        memcpy(nt, p->text, off);
        p->text = nt;
        x->text_cap = cap;
    }
    if (sep) {
        p->text[off - 1] = '\n';
    }
    if (escaped) {
        n = tp_json_unescape(raw, len, p->text + off);
    } else {
        memcpy(p->text + off, raw, len);
        n = len;
    }
    p->chars += utf8_count(p->text + off, n, &p->non_ascii);
    p->text_len = off + n;

    if (p->nsegs == p->segs_cap) {
        size_t        cap = p->segs_cap ? p->segs_cap * 2 : 16;
        tp_segment_t *ns = tp_arena_alloc(&p->arena, cap * sizeof(*ns));

        if (ns == NULL) {
            return EX_ENOMEM;
        }
        if (p->nsegs) {
            memcpy(ns, p->segs, p->nsegs * sizeof(*ns));
        }
        p->segs = ns;
        p->segs_cap = cap;
    }
    s = &p->segs[p->nsegs++];
    s->raw_off = (uint32_t) (raw - p->body);
    s->raw_len = (uint32_t) len;
    s->text_off = (uint32_t) off;
    s->text_len = (uint32_t) n;
    x->last_join = join;
    return 0;
}


/* a model name from the body, decoded; Gemini's "models/" dropped */
static char *
model_of(ex_t *x, const unsigned char *raw, size_t len, int escaped)
{
    char   *m = tp_arena_alloc(&x->p->arena, len + 1);
    size_t  n = len;

    if (m == NULL) {
        return NULL;
    }
    if (escaped) {
        n = tp_json_unescape(raw, len, (unsigned char *) m);
    } else {
        memcpy(m, raw, len);
    }
    m[n] = '\0';
    if (x->p->provider == TP_GOOGLE && n > 7 && memcmp(m, "models/", 7) == 0) {
        m += 7;
    }
    return m;
}


/* the "type" of an object whose "data" is base64 or opaque */
static int
binary_type(const unsigned char *raw, size_t len, int escaped)
{
    unsigned char buf[6 * 17];

    if (escaped) {
        if (len > sizeof(buf)) {
            return 0;
        }
        len = tp_json_unescape(raw, len, buf);
        raw = buf;
    }
    return key_is("base64", raw, len) || key_is("redacted_thinking", raw, len);
}


static int
ex_data(ex_t *x, const unsigned char *raw, size_t len, int escaped)
{
    frame_t  *f = &x->st[x->depth - 1];
    tent_t   *nt;
    uint32_t  off = (uint32_t) (raw - x->p->body), cap;

    if (f->binary) {
        return 0;
    }
    if (!f->typed && x->pass == 2) {
        while (x->skip_i < x->nskip && x->skip[x->skip_i] < off) {
            x->skip_i++;
        }
        if (x->skip_i < x->nskip && x->skip[x->skip_i] == off) {
            return 0;
        }

    } else if (!f->typed) {
        /* the type may still say base64: text for now */
        if (x->ntent == x->tent_cap) {
            cap = x->tent_cap ? x->tent_cap * 2 : 16;
            nt = tp_arena_alloc(&x->p->arena, cap * sizeof(*nt));
            if (nt == NULL) {
                return EX_ENOMEM;
            }
            if (x->ntent) {
                memcpy(nt, x->tent, x->ntent * sizeof(*nt));
            }
            x->tent = nt;
            x->tent_cap = cap;
        }
        x->tent[x->ntent].off = off;
        x->tent[x->ntent].prev = f->tent;
        f->tent = ++x->ntent;
    }
    return add_segment(x, raw, len, escaped, 0);
}


static int
ex_string(void *ctx, const unsigned char *raw, size_t len, int escaped)
{
    ex_t     *x = ctx;
    uint8_t   state, leaf, blob;
    uint32_t  join;
    char     *m;

    if (x->depth == 0) {
        return ex_fail(x, "the request body must be a JSON object");
    }
    target(x, &state, &leaf, &join, &blob);
    switch (leaf) {

    case L_TEXT:
    case L_PART:
        return add_segment(x, raw, len, escaped, join);

    case L_URL:
        /* inline base64 (an image, audio): the provider reads no text */
        if (len >= 5 && strncasecmp((const char *) raw, "data:", 5) == 0) {
            return 0;
        }
        return add_segment(x, raw, len, escaped, 0);

    case L_DATA:
        return ex_data(x, raw, len, escaped);

    case L_TYPE:
        if (binary_type(raw, len, escaped)) {
            x->st[x->depth - 1].binary = 1;
        }
        return 0;

    case L_MODEL:
        if (x->p->model != NULL) {
            return ex_fail(x, "duplicate \"model\" field");
        }
        x->p->model = model_of(x, raw, len, escaped);
        return x->p->model == NULL ? EX_ENOMEM : 0;

    case L_NMODEL:
        /* the model rules check one model per request: a batch's requests
         * must all name the same */
        m = model_of(x, raw, len, escaped);
        if (m == NULL) {
            return EX_ENOMEM;
        }
        if (x->nmodel == NULL) {
            x->nmodel = m;
        } else if (strcmp(x->nmodel, m) != 0) {
            return ex_fail(x, "the requests of a batch name different "
                              "models");
        }
        return 0;
    }
    return 0;
}


static int
ex_number(void *ctx, const unsigned char *raw, size_t len)
{
    ex_t     *x = ctx;
    uint8_t   state, leaf, blob;
    uint32_t  join;
    char      buf[64];
    double    d;
    int64_t   v;
    size_t    i;

    if (x->depth == 0) {
        return ex_fail(x, "the request body must be a JSON object");
    }
    target(x, &state, &leaf, &join, &blob);
    if (leaf != L_MAXTOK || raw[0] == '-') {
        return 0;
    }
    /* the usual plain integer: up to 15 digits are exact in a double, so
     * this is what strtod() would give */
    for (i = 0, v = 0; i < len && i < 16 && raw[i] >= '0' && raw[i] <= '9';
         i++)
    {
        v = v * 10 + (raw[i] - '0');
    }
    if (i == len && len <= 15) {
        /* v is the value */
    } else if (len >= sizeof(buf)) {
        v = INT64_MAX;
    } else {
        memcpy(buf, raw, len);
        buf[len] = '\0';
        d = strtod(buf, NULL);
        v = d >= 9.0e18 ? INT64_MAX : (int64_t) d;
    }
    if (v > x->p->max_output_tokens) {
        x->p->max_output_tokens = v;
    }
    return 0;
}


static int
ex_literal(void *ctx, int which)
{
    ex_t     *x = ctx;
    uint8_t   state, leaf, blob;
    uint32_t  join;

    (void) which;
    if (x->depth == 0) {
        return ex_fail(x, "the request body must be a JSON object");
    }
    target(x, &state, &leaf, &join, &blob);
    return 0;
}


static const tp_json_cb_t ex_cb = {
    ex_start, ex_end, ex_key, ex_string, ex_number, ex_literal
};


static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return x < y ? -1 : x > y;
}


/* pass 2 starts from an empty text; the arena keeps what pass 1 made */
static void
ex_again(ex_t *x)
{
    tp_prompt_t *p = x->p;

    qsort(x->skip, x->nskip, sizeof(*x->skip), cmp_u32);
    p->text_len = 0;
    p->chars = 0;
    p->non_ascii = 0;
    p->nsegs = 0;
    p->model = NULL;
    p->max_output_tokens = -1;
    x->depth = 0;
    x->pend_state = S_NONE;
    x->pend_leaf = L_NONE;
    x->pend_blob = 0;
    x->arr_ids = 0;
    x->last_join = 0;
    x->root_done = 0;
    x->nmodel = NULL;
    x->ntent = 0;
    x->skip_i = 0;
    x->pass = 2;
}


int
tp_prompt_parse(const tp_alloc_t *a, int provider, const unsigned char *body,
                size_t len, const char *url_model, size_t url_model_len,
                tp_prompt_t **out, char *err, size_t errlen)
{
    tp_prompt_t *p;
    ex_t         ex, *x = &ex;
    tp_arena_t   ar;
    int          rc;

    *out = NULL;
    if (errlen) {
        err[0] = '\0';
    }
    if (provider < 0 || provider >= TP_PROVIDERS) {
        if (errlen) {
            snprintf(err, errlen, "unknown provider");
        }
        return TP_PROMPT_EMALFORMED;
    }
    if (len > TP_PROMPT_MAX_BODY) {
        if (errlen) {
            snprintf(err, errlen, "request body larger than %u bytes",
                     TP_PROMPT_MAX_BODY);
        }
        return TP_PROMPT_ETOOBIG;
    }

    tp_arena_init(&ar, a);
    p = tp_arena_alloc(&ar, sizeof(*p));
    if (p == NULL) {
        goto nomem;
    }
    memset(p, 0, sizeof(*p));
    p->arena = ar;
    p->provider = provider;
    p->body = body;
    p->body_len = len;
    p->max_output_tokens = -1;

    memset(x, 0, sizeof(*x));
    x->text_cap = len + 1 < 4096 ? len + 1 : 4096;
    p->text = tp_arena_alloc(&p->arena, x->text_cap);
    if (p->text == NULL) {
        goto nomem;
    }
    x->p = p;
    x->pmask = 1u << provider;
    x->pass = 1;
    x->err = err;
    x->errlen = errlen;

    rc = tp_json_scan(body, len, &ex_cb, x, err, errlen);
    if (rc == 0 && x->again) {
        ex_again(x);
        rc = tp_json_scan(body, len, &ex_cb, x, err, errlen);
    }
    if (rc == EX_ENOMEM) {
        goto nomem;
    }
    if (rc != 0) {
        goto malformed;
    }
    p->text[p->text_len] = '\0';

    if (url_model != NULL && url_model_len > 7
        && memcmp(url_model, "models/", 7) == 0)
    {
        url_model += 7;
        url_model_len -= 7;
    }
    /* the URL names what is served: Gemini's model, Azure's deployment
     * (Azure ignores a "model" in the body, so that is only a claim) */
    if (url_model != NULL && url_model_len > 0
        && (provider == TP_GOOGLE || provider == TP_AZURE
            || p->model == NULL))
    {
        p->model = tp_arena_strndup(&p->arena, url_model, url_model_len);
        if (p->model == NULL) {
            goto nomem;
        }
    }
    if (x->nmodel != NULL) {
        if (p->model == NULL) {
            p->model = x->nmodel;

        } else if (strcmp(p->model, x->nmodel) != 0) {
            if (errlen) {
                snprintf(err, errlen, "a request of the batch names another "
                         "model than the request itself");
            }
            goto malformed;
        }
    }
    *out = p;
    return TP_PROMPT_OK;

malformed:
    ar = p->arena;
    tp_arena_free(&ar);
    return TP_PROMPT_EMALFORMED;

nomem:
    if (p != NULL) {
        ar = p->arena;
    }
    tp_arena_free(&ar);
    if (errlen) {
        snprintf(err, errlen, "out of memory");
    }
    return TP_PROMPT_ENOMEM;
}


/* ---- endpoints ---- */

/* The paths, after the route's base URL, whose bodies the walk above
 * understands: JSON whose text is the request's own. '*' is one path
 * segment (no '/' or ':'). Not here, so refused when a rule applies:
 * multipart and binary uploads (files, audio transcription, image edits)
 * and requests whose prompts live elsewhere (OpenAI batches and fine-tuning
 * read uploaded files; realtime sessions stream past the gateway). */
static const char *const openai_endpoints[] = {
    "chat/completions", "completions", "embeddings", "moderations",
    "responses", "responses/input_tokens", "images/generations",
    "audio/speech",
    "assistants", "assistants/*",
    "threads", "threads/*", "threads/runs", "threads/*/messages",
    "threads/*/messages/*", "threads/*/runs", "threads/*/runs/*",
    "threads/*/runs/*/submit_tool_outputs",
    "conversations", "conversations/*", "conversations/*/items",
    NULL
};

static const char *const anthropic_endpoints[] = {
    "messages", "messages/count_tokens", "messages/batches", "complete",
    NULL
};

static const char *const google_endpoints[] = {
    "models/*:generateContent", "models/*:streamGenerateContent",
    "models/*:countTokens", "models/*:embedContent",
    "models/*:batchEmbedContents", "models/*:asyncBatchEmbedContent",
    "models/*:batchGenerateContent", "models/*:predict",
    "models/*:predictLongRunning",
    "cachedContents", "cachedContents/*",
    NULL
};


/* endpoints that keep nothing in the provider's account another tenant
 * could read or change through a shared credential: inference, and (GET
 * only: DELETE of a fine-tuned model changes the account) the models */
static const char *const openai_stateless[] = {
    "chat/completions", "completions", "embeddings", "moderations",
    "responses", "responses/input_tokens", "images/generations",
    "images/edits", "images/variations", "audio/speech",
    "audio/transcriptions", "audio/translations",
    NULL
};

static const char *const anthropic_stateless[] = {
    "messages", "messages/count_tokens", "complete",
    NULL
};

static const char *const google_stateless[] = {
    "models/*:generateContent", "models/*:streamGenerateContent",
    "models/*:countTokens", "models/*:embedContent",
    "models/*:batchEmbedContents", "models/*:predict",
    NULL
};

/* OpenAI's fine-tuned model ids hold ':' ("ft:gpt-4o:org::id") */
static const char *const openai_models[] = { "models", "models/+", NULL };
static const char *const models[] = { "models", "models/*", NULL };


static int
path_match(const char *pat, const unsigned char *s, size_t n)
{
    size_t i = 0, start;

    for ( ; *pat; pat++) {
        if (*pat == '*' || *pat == '+') {
            /* '*' one segment up to a ':' method, '+' one segment */
            for (start = i;
                 i < n && s[i] != '/' && (s[i] != ':' || *pat == '+');
                 i++)
            {
                /* void */
            }
            if (i == start) {
                return 0;
            }
            continue;
        }
        if (i == n || s[i] != (unsigned char) *pat) {
            return 0;
        }
        i++;
    }
    return i == n;
}


static const char *
endpoint_in(const char *const *openai, const char *const *anthropic,
    const char *const *google, int provider, const unsigned char *path,
    size_t len)
{
    static const char *const versions[] = { "v1/", "v1beta/", "v1alpha/" };
    const char *const       *e;
    size_t                   i, n;

    while (len && path[0] == '/') {
        path++;
        len--;
    }
    /* a base URL without the version (a proxy's, say) */
    for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        n = strlen(versions[i]);
        if (len > n && memcmp(path, versions[i], n) == 0) {
            path += n;
            len -= n;
            break;
        }
    }
    switch (provider) {
    case TP_OPENAI:
    case TP_AZURE:
        e = openai;
        break;
    case TP_ANTHROPIC:
        e = anthropic;
        break;
    case TP_GOOGLE:
        e = google;
        break;
    default:
        return NULL;
    }
    for ( ; *e; e++) {
        if (path_match(*e, path, len)) {
            return *e;
        }
    }
    return NULL;
}


const char *
tp_prompt_endpoint(int provider, const unsigned char *path, size_t len)
{
    return endpoint_in(openai_endpoints, anthropic_endpoints,
                       google_endpoints, provider, path, len);
}


const char *
tp_stateless_endpoint(int provider, int read, const unsigned char *path,
    size_t len)
{
    const char *e;

    e = endpoint_in(openai_stateless, anthropic_stateless, google_stateless,
                    provider, path, len);
    if (e == NULL && read) {
        e = endpoint_in(openai_models, models, models, provider, path, len);
    }
    return e;
}

const unsigned char *
tp_prompt_folded(tp_prompt_t *p)
{
    if (p->folded == NULL) {
        p->folded = tp_arena_alloc(&p->arena, p->text_len + 1);
        if (p->folded == NULL) {
            return NULL;
        }
        tp_utf8_fold_buf(p->text, p->text_len, p->folded);
        p->folded[p->text_len] = '\0';
    }
    return p->folded;
}


/* ---- redaction ---- */

static int
span_cmp(const void *a, const void *b)
{
    const tp_span_t *x = a, *y = b;

    if (x->start != y->start) {
        return x->start < y->start ? -1 : 1;
    }
    return x->end > y->end ? -1 : x->end < y->end;
}


static size_t
escape_into(unsigned char *o, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char    *start = o;
    size_t            i;
    unsigned char     c;

    for (i = 0; i < n; i++) {
        c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':  *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = (unsigned char) hex[c >> 4];
            *o++ = (unsigned char) hex[c & 15];
        }
    }
    return o - start;
}


static size_t
marker_into(unsigned char *o, const char *tag)
{
    size_t n = strlen(tag);

    memcpy(o, "[REDACTED:", 10);
    memcpy(o + 10, tag, n);
    o[10 + n] = ']';
    return 11 + n;
}


int
tp_prompt_redact(tp_prompt_t *p, const tp_span_t *spans, size_t nspans,
                 const unsigned char **out, size_t *out_len)
{
    tp_span_t          *m;
    const tp_segment_t *s;
    unsigned char      *o;
    size_t              i, j, k = 0, si = 0, olen = 0, pos = 0, cap, tag = 0,
                        x, se, next, n;

    *out = p->body;
    *out_len = p->body_len;
    if (nspans == 0) {
        return 0;
    }

    m = tp_arena_alloc(&p->arena, nspans * sizeof(*m));
    if (m == NULL) {
        return -1;
    }
    memcpy(m, spans, nspans * sizeof(*m));
    qsort(m, nspans, sizeof(*m), span_cmp);
    for (i = 0; i < nspans; i++) {
        if (m[i].end > p->text_len) {
            m[i].end = (uint32_t) p->text_len;
        }
        if (m[i].start >= m[i].end) {
            continue;
        }
        if (k > 0 && m[i].start < m[k - 1].end) {
            if (m[i].end > m[k - 1].end) {
                m[k - 1].end = m[i].end;
            }
            continue;
        }
        m[k++] = m[i];
        n = strlen(m[i].tag);
        tag = n > tag ? n : tag;
    }
    if (k == 0) {
        return 0;
    }

    /* every piece of a span in a segment gets one marker: at most k + the
     * number of segments; the re-escaped text is never longer than its raw
     * form */
    cap = p->body_len + (k + p->nsegs) * (tag + 11) + 1;
    o = tp_arena_alloc(&p->arena, cap);
    if (o == NULL) {
        return -1;
    }

    for (i = 0; i < p->nsegs && si < k; i++) {
        s = &p->segs[i];
        se = (size_t) s->text_off + s->text_len;
        while (si < k && m[si].end <= s->text_off) {
            si++;
        }
        if (si == k || m[si].start >= se) {
            continue;
        }

        memcpy(o + olen, p->body + pos, s->raw_off - pos);
        olen += s->raw_off - pos;
        pos = (size_t) s->raw_off + s->raw_len;

        j = si;
        x = s->text_off;
        while (x < se) {
            if (j < k && m[j].start <= x) {
                olen += marker_into(o + olen, m[j].tag);
                if (m[j].end <= se) {
                    x = m[j].end;
                    j++;
                } else {
                    x = se;
                }
                continue;
            }
            next = j < k && m[j].start < se ? m[j].start : se;
            olen += escape_into(o + olen, p->text + x, next - x);
            x = next;
        }
        si = j;
    }
    memcpy(o + olen, p->body + pos, p->body_len - pos);
    olen += p->body_len - pos;

    *out = o;
    *out_len = olen;
    return 0;
}


void
tp_prompt_destroy(tp_prompt_t *p)
{
    tp_arena_t ar;

    if (p == NULL) {
        return;
    }
    if (p->re_free != NULL) {
        p->re_free(p);
    }
    ar = p->arena;
    tp_arena_free(&ar);
}
