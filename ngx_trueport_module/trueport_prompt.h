/* trueport_prompt.h - the text a request sends to the model, taken from
 * its JSON body per provider format, and the body rewritten with parts of
 * that text redacted. Plain C on plain buffers, no nginx types; memory from
 * the caller's allocator only (trueport_usage.h), bounded by the body size.
 *
 * What is extracted: every string the model may read, wherever it sits
 * in the body (a deny list of non-text keys, not a list of text paths):
 * every string value of the request is text except the values of keys
 * that hold identifiers, enums, opaque tokens or binary data (type, role,
 * id and every *_id / *_ids, model, user, status, format, media and mime
 * types, signatures, encrypted content, file_data, tool_choice, include,
 * voice, ttl ...; key_classes in trueport_prompt.c), the base64 "data" of
 * Gemini's inlineData, OpenAI's input_audio and of an object whose "type"
 * is base64 or redacted_thinking, and data: URLs under url / image_url /
 * file_url / audio_url / fileUri. Only strings are denied: an object or
 * array under a denied key is read. In free-form JSON (Anthropic's tool
 * input and input_schema, Gemini's functionCall args and functionResponse
 * response, every parameters / schema / *Schema / arguments) object keys
 * are text too and nothing is denied. So tool and function descriptions,
 * Anthropic document blocks (text sources, title, context), OpenAI's
 * prediction, batches (Anthropic requests[].params, Gemini requests[] and
 * inlined requests), cachedContents, system instructions, Responses items
 * of any kind and keys no provider has defined yet are all read.
 * An object with two "type" keys is malformed (a parser that keeps the
 * last one could read as text what the walk took for base64).
 * The model: the request's "model" (for google a leading "models/"
 * dropped; for google and azure, or when the body has none, the url_model
 * argument wins: the module passes Gemini's model and Azure's deployment
 * from the URL, what the provider really serves). The requests of a batch
 * must all name that model (or, without one, the same one), else the body
 * is malformed: model rules check one model per request. Token limit: the
 * largest of max_tokens, max_completion_tokens, max_output_tokens,
 * max_tokens_to_sample, generationConfig.maxOutputTokens (of the request
 * and of every request of a batch).
 *
 * The segments are decoded (every JSON escape, surrogate pairs included)
 * and concatenated into one text the rules match over. Consecutive text
 * pieces of one parts array (OpenAI content parts, Anthropic blocks, Gemini
 * parts) are joined with nothing between them: that is what the model
 * reads, so a secret split over two parts is found, and no boundary is
 * invented inside a word ("cl" + "ass" stays "class"). Every other pair of
 * segments (two messages, system and messages, content and tool call) is
 * separated by one '\n', a real boundary. */
#ifndef TRUEPORT_PROMPT_H
#define TRUEPORT_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "trueport_usage.h"

#define TP_PROMPT_MAX_BODY  (16u * 1024 * 1024)  /* larger bodies: ETOOBIG */
#define TP_JSON_MAX_DEPTH   256

/* tp_prompt_parse results; the module maps them to HTTP statuses */
enum {
    TP_PROMPT_OK = 0,
    TP_PROMPT_EMALFORMED = -1,   /* 400: not JSON, or not a request object */
    TP_PROMPT_ETOOBIG = -2,      /* 413 */
    TP_PROMPT_ENOMEM = -3        /* 500 */
};


/* A bump allocator over tp_alloc_t: many small pieces, freed at once. */
typedef struct tp_arena_block_s tp_arena_block_t;

typedef struct {
    tp_alloc_t         a;
    tp_arena_block_t  *blocks;
    unsigned char     *pos, *end;
} tp_arena_t;

void  tp_arena_init(tp_arena_t *ar, const tp_alloc_t *a);
/* sizes are rounded to 16, so pieces are as aligned as the allocator's
 * own blocks (8 bytes from an nginx pool) */
void *tp_arena_alloc(tp_arena_t *ar, size_t n);
char *tp_arena_strndup(tp_arena_t *ar, const char *s, size_t n);
void  tp_arena_free(tp_arena_t *ar);


/* A strict RFC 8259 scanner (UTF-8 validated, depth-bounded, no recursion)
 * reporting events. String and key pointers are the raw bytes between the
 * quotes; `escaped` says whether tp_json_unescape is needed. A callback
 * returns 0 to go on, or a negative value that tp_json_scan returns. */
enum { TP_JSON_NULL = 0, TP_JSON_FALSE, TP_JSON_TRUE };

typedef struct {
    int (*start)(void *ctx, int array);
    int (*end)(void *ctx, int array);
    int (*key)(void *ctx, const unsigned char *raw, size_t len, int escaped);
    int (*string)(void *ctx, const unsigned char *raw, size_t len,
                  int escaped);
    int (*number)(void *ctx, const unsigned char *raw, size_t len);
    int (*literal)(void *ctx, int which);
} tp_json_cb_t;

/* 0, -1 with err set when the text is not one JSON value, or a callback's
 * own negative value. Any callback may be NULL. */
int tp_json_scan(const unsigned char *buf, size_t len, const tp_json_cb_t *cb,
                 void *ctx, char *err, size_t errlen);
/* Decodes a string the scanner accepted into out (room for len bytes is
 * always enough); returns the decoded length. Lone surrogates become
 * U+FFFD, so the result is valid UTF-8. */
size_t tp_json_unescape(const unsigned char *raw, size_t len,
                        unsigned char *out);


/* One string value of the body that went into the text. */
typedef struct {
    uint32_t raw_off, raw_len;     /* between the quotes, in the body */
    uint32_t text_off, text_len;   /* decoded, in text */
} tp_segment_t;

/* A piece of the text to redact, in text offsets; tag names the marker:
 * "[REDACTED:<tag>]". */
typedef struct {
    uint32_t    start, end;
    const char *tag;
} tp_span_t;

/* Read-only for callers except through the functions below. */
typedef struct tp_prompt_s {
    tp_arena_t            arena;
    int                   provider;
    const unsigned char  *body;          /* the caller's, not copied */
    size_t                body_len;

    unsigned char        *text;          /* segments, see above; NUL-ended */
    size_t                text_len;
    unsigned char        *folded;        /* case-folded text, lazily */
    size_t                chars;         /* code points in the segments */
    int                   non_ascii;     /* a text byte is >= 0x80 */

    tp_segment_t         *segs;
    size_t                nsegs, segs_cap;

    char                 *model;         /* NULL when none */
    int64_t               max_output_tokens;   /* -1 when not set */

    /* tp_policy_eval's PCRE2 match data, made on first use, and how
     * tp_prompt_destroy frees it */
    void                 *re_gctx;
    void                 *re_md;
    void                (*re_free)(struct tp_prompt_s *p);
} tp_prompt_t;

/* Parses body (which must stay valid while the prompt is used). provider is
 * TP_OPENAI ... TP_AZURE; url_model may be NULL. On error *out is NULL and
 * err says why (for a 400 body). */
int tp_prompt_parse(const tp_alloc_t *a, int provider,
                    const unsigned char *body, size_t len,
                    const char *url_model, size_t url_model_len,
                    tp_prompt_t **out, char *err, size_t errlen);

/* The case-folded copy of the text (same length and offsets): ASCII,
 * Latin-1, Latin Extended-A, Greek and Cyrillic letters lowered. NULL when
 * out of memory. */
const unsigned char *tp_prompt_folded(tp_prompt_t *p);

/* The body with every span replaced by "[REDACTED:<tag>]" inside its JSON
 * string value. Spans may overlap (they are merged; the earliest start
 * names the marker) and may cover several segments (each segment's piece
 * gets a marker). Only string values holding a redaction are rewritten,
 * re-escaped minimally (", \ and control characters; other characters as
 * UTF-8); every other byte of the body is kept as it was, whitespace
 * included. With no span, *out is the body itself. The output lives as
 * long as the prompt. 0, or -1 when out of memory. */
int tp_prompt_redact(tp_prompt_t *p, const tp_span_t *spans, size_t nspans,
                     const unsigned char **out, size_t *out_len);

/* The endpoint pattern ("chat/completions", "messages/batches",
 * "models/{m}:generateContent" ...) that path, as it goes upstream after the
 * route's base URL (leading '/' and a "v1/", "v1beta/" or "v1alpha/"
 * ignored, no query), matches: tp_prompt_parse understands its bodies.
 * NULL: an endpoint whose body the walk does not understand (uploads,
 * batches of uploaded files ...); the module refuses it when a rule
 * applies. */
const char *tp_prompt_endpoint(int provider, const unsigned char *path,
                               size_t len);

/* The pattern, as above, when the endpoint keeps nothing in the provider's
 * account: inference, and with read (a GET or HEAD) the models and one
 * model. What a credential shared by many tenants may be used for. NULL:
 * files, batches, assistants, threads, vector stores, fine-tuning, cached
 * contents ... whose state another tenant could list, read or change
 * through the same credential. */
const char *tp_stateless_endpoint(int provider, int read,
                                  const unsigned char *path, size_t len);

/* Frees everything the prompt allocated, policy results included. */
void tp_prompt_destroy(tp_prompt_t *p);

/* UTF-8 helpers shared with trueport_policy.c */
uint32_t tp_utf8_fold(uint32_t cp);          /* same encoded length */
int      tp_utf8_is_word(uint32_t cp);       /* letters, digits, '_' */
int      tp_utf8_word_before(const unsigned char *t, size_t i);
int      tp_utf8_word_at(const unsigned char *t, size_t n, size_t i);
void     tp_utf8_fold_buf(const unsigned char *in, size_t n,
                          unsigned char *out);

#endif
