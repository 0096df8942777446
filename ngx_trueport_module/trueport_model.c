/* trueport_model.c - the request's top-level "model", by a streaming scan
 * (trueport_model.h). */
#include <string.h>

#include "trueport_model.h"

enum {
    TP_MS_START = 0,     /* before the top-level '{' */
    TP_MS_KEY_WAIT,      /* in the object, before a key or its end */
    TP_MS_KEY,           /* in a top-level key */
    TP_MS_COLON,         /* after a key */
    TP_MS_VALUE_WAIT,    /* after the colon */
    TP_MS_MODEL,         /* in the string value of "model" */
    TP_MS_SKIP_STRING,   /* in another top-level string value */
    TP_MS_SKIP_NESTED,   /* in an object or array value (depth > 0) */
    TP_MS_SKIP_SCALAR,   /* in a number, true, false or null */
    TP_MS_AFTER_VALUE    /* before ',' or '}' */
};


#define tp_ws(c)  ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')


void
tp_model_scan_init(tp_model_scan_t *s)
{
    memset(s, 0, sizeof(tp_model_scan_t));
}


const char *
tp_model_scan_result(const tp_model_scan_t *s)
{
    return (s->done && s->len) ? s->model : NULL;
}


static void
tp_model_scan_end(tp_model_scan_t *s, int found)
{
    if (!found) {
        s->len = 0;
    }

    s->model[s->len] = '\0';
    s->done = 1;
}


int
tp_model_scan_feed(tp_model_scan_t *s, const unsigned char *p, size_t len)
{
    unsigned char         c;
    const unsigned char  *end;

    for (end = p + len; p < end && !s->done; p++) {
        c = *p;

        switch (s->state) {

        case TP_MS_START:
            if (c == '{') {
                s->state = TP_MS_KEY_WAIT;

            } else if (!tp_ws(c)) {
                tp_model_scan_end(s, 0);
            }
            break;

        case TP_MS_KEY_WAIT:
            if (c == '"') {
                s->state = TP_MS_KEY;
                s->key_len = 0;
                s->esc = 0;

            } else if (c == '}') {
                tp_model_scan_end(s, 0);

            } else if (!tp_ws(c) && c != ',') {
                tp_model_scan_end(s, 0);
            }
            break;

        case TP_MS_KEY:
            if (s->esc) {
                s->esc = 0;
                s->key_len = sizeof(s->key) + 1;    /* "model" has none */

            } else if (c == '\\') {
                s->esc = 1;

            } else if (c == '"') {
                s->key_model = (s->key_len == 5
                                && memcmp(s->key, "model", 5) == 0);
                s->state = TP_MS_COLON;

            } else if (s->key_len < sizeof(s->key)) {
                s->key[s->key_len++] = (char) c;

            } else {
                s->key_len = sizeof(s->key) + 1;
            }
            break;

        case TP_MS_COLON:
            if (c == ':') {
                s->state = TP_MS_VALUE_WAIT;

            } else if (!tp_ws(c)) {
                tp_model_scan_end(s, 0);
            }
            break;

        case TP_MS_VALUE_WAIT:
            if (tp_ws(c)) {
                break;
            }

            s->esc = 0;

            if (c == '"') {
                s->state = s->key_model ? TP_MS_MODEL : TP_MS_SKIP_STRING;
                s->len = 0;

            } else if (c == '{' || c == '[') {
                s->state = TP_MS_SKIP_NESTED;
                s->depth = 1;
                s->in_str = 0;

            } else if (c == ',' || c == '}' || c == ':' || c == ']') {
                tp_model_scan_end(s, 0);

            } else {
                s->state = TP_MS_SKIP_SCALAR;
            }
            break;

        case TP_MS_MODEL:
            if (s->esc) {
                s->esc = 0;

                if (c != '"' && c != '\\' && c != '/') {
                    tp_model_scan_end(s, 0);
                    break;
                }

            } else if (c == '\\') {
                s->esc = 1;
                break;

            } else if (c == '"') {
                tp_model_scan_end(s, 1);
                break;

            } else if (c < 0x20) {
                tp_model_scan_end(s, 0);
                break;
            }

            if (s->len < TP_MODEL_MAX - 1) {
                s->model[s->len++] = (char) c;
            }
            break;

        case TP_MS_SKIP_STRING:
            if (s->esc) {
                s->esc = 0;

            } else if (c == '\\') {
                s->esc = 1;

            } else if (c == '"') {
                s->state = TP_MS_AFTER_VALUE;
            }
            break;

        case TP_MS_SKIP_NESTED:
            if (s->in_str) {
                if (s->esc) {
                    s->esc = 0;

                } else if (c == '\\') {
                    s->esc = 1;

                } else if (c == '"') {
                    s->in_str = 0;
                }

            } else if (c == '"') {
                s->in_str = 1;

            } else if (c == '{' || c == '[') {
                s->depth++;

            } else if ((c == '}' || c == ']') && --s->depth == 0) {
                s->state = TP_MS_AFTER_VALUE;
            }
            break;

        case TP_MS_SKIP_SCALAR:
            if (c == ',') {
                s->state = TP_MS_KEY_WAIT;

            } else if (c == '}') {
                tp_model_scan_end(s, 0);

            } else if (tp_ws(c)) {
                s->state = TP_MS_AFTER_VALUE;
            }
            break;

        default: /* TP_MS_AFTER_VALUE */
            if (c == ',') {
                s->state = TP_MS_KEY_WAIT;

            } else if (!tp_ws(c)) {
                tp_model_scan_end(s, 0);
            }
            break;
        }
    }

    return s->done;
}
