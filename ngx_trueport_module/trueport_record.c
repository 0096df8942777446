/* trueport_record.c - see trueport_record.h. Strings are JSON-escaped and
 * cut to a bounded length, so a record always fits in TP_RECORD_MAX. */
#include "trueport_record.h"

#include <string.h>

typedef struct {
    char   *p;
    size_t  len, cap;
    int     overflow;
} out_t;


static void
put(out_t *o, const char *s, size_t n)
{
    if (o->len + n >= o->cap) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}


static void
put_lit(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}


/* JSON string bytes: runs that need no escape are copied at once */
static void
put_str(out_t *o, const char *key, const char *s, size_t n, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    size_t            i, j;
    unsigned char     c;
    char              esc[6];

    put(o, ",\"", 2);
    put(o, key, strlen(key));
    if (s == NULL) {
        put(o, "\":null", 6);
        return;
    }
    put(o, "\":\"", 3);
    if (n > max) {
        n = max;
        /* do not cut a UTF-8 sequence in half */
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    for (i = 0; i < n; i = j + 1) {
        for (j = i; j < n; j++) {
            c = (unsigned char) s[j];
            if (c < 0x20 || c == '"' || c == '\\' || c == 0x7f) {
                break;
            }
        }
        put(o, s + i, j - i);
        if (j == n) {
            break;
        }
        c = (unsigned char) s[j];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char) c;
            put(o, esc, 2);
        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            put(o, esc, 6);
        }
    }
    put(o, "\"", 1);
}


static void
put_cstr(out_t *o, const char *key, const char *s, size_t max)
{
    put_str(o, key, s, s ? strlen(s) : 0, max);
}


/* decimal digits without snprintf (a third of a record's cost) */
static void
put_uint(out_t *o, uint64_t v)
{
    char    b[20];
    size_t  i = sizeof(b);

    do {
        b[--i] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, b + i, sizeof(b) - i);
}


static void
put_int(out_t *o, const char *key, int64_t v)
{
    if (v < 0) {
        return;                      /* unknown: absent */
    }
    put(o, ",\"", 2);
    put(o, key, strlen(key));
    put(o, "\":", 2);
    put_uint(o, (uint64_t) v);
}


size_t
tp_record_usage(char *buf, size_t cap, const tp_usage_rec_t *r)
{
    out_t o = { buf, 0, cap, 0 };

    put_lit(&o, "{\"v\":1,\"type\":\"usage\",\"ts\":");
    put_uint(&o, r->ts_ms > 0 ? (uint64_t) r->ts_ms : 0);
    put_cstr(&o, "request_id", r->request_id, 64);
    put_cstr(&o, "tenant_id", r->tenant_id, 36);
    put_cstr(&o, "key_id", r->key_id, 36);
    put_cstr(&o, "env", r->env, 32);
    put_cstr(&o, "provider", r->provider >= 0 && r->provider < TP_PROVIDERS
                             ? tp_provider_names[r->provider] : NULL, 16);
    put_cstr(&o, "model", r->usage.model[0] ? r->usage.model : r->model, 95);
    put_str(&o, "path", r->path, r->path ? r->path_len : 0, 1024);
    put_int(&o, "status", r->status);
    put_lit(&o, r->stream ? ",\"stream\":true" : ",\"stream\":false");
    put_int(&o, "input_tokens", r->usage.input_tokens);
    put_int(&o, "output_tokens", r->usage.output_tokens);
    put_int(&o, "cached_tokens", r->usage.cached_tokens);
    put_int(&o, "reasoning_tokens", r->usage.reasoning_tokens);
    put_int(&o, "total_tokens", r->usage.total_tokens);
    put_int(&o, "ttfb_ms", r->ttfb_ms);
    put_int(&o, "latency_ms", r->latency_ms);
    put_int(&o, "bytes_in", r->bytes_in);
    put_int(&o, "bytes_out", r->bytes_out);
    put_cstr(&o, "client_ip", r->client_ip, 64);
    put_cstr(&o, "error_kind", r->error_kind, 64);
    put_lit(&o, r->completed ? ",\"completed\":true}\n"
                             : ",\"completed\":false}\n");

    return o.overflow ? 0 : o.len;
}


size_t
tp_record_violation(char *buf, size_t cap, const tp_violation_rec_t *v)
{
    out_t o = { buf, 0, cap, 0 };

    put_lit(&o, "{\"v\":1,\"type\":\"violation\",\"ts\":");
    put_uint(&o, v->ts_ms > 0 ? (uint64_t) v->ts_ms : 0);
    put_cstr(&o, "id", v->id, 36);
    put_cstr(&o, "request_id", v->request_id, 64);
    put_cstr(&o, "tenant_id", v->tenant_id, 36);
    put_cstr(&o, "key_id", v->key_id, 36);
    put_cstr(&o, "env", v->env, 32);
    put_cstr(&o, "provider", v->provider >= 0 && v->provider < TP_PROVIDERS
                             ? tp_provider_names[v->provider] : NULL, 16);
    put_cstr(&o, "rule_id", v->rule_id, 36);
    put_cstr(&o, "rule_name", v->rule_name, 200);
    put_cstr(&o, "rule_type", v->rule_type, 16);
    put_cstr(&o, "action", v->action, 16);
    put_cstr(&o, "detector", v->detector, 64);
    put_cstr(&o, "excerpt", v->excerpt, 256);
    put(&o, "}\n", 2);

    return o.overflow ? 0 : o.len;
}


size_t
tp_record_count(char *buf, size_t len, size_t cap, uint64_t count)
{
    out_t o = { buf, 0, cap, 0 };

    if (len < 2 || len > cap || buf[len - 2] != '}' || buf[len - 1] != '\n') {
        return 0;
    }
    if (count <= 1) {
        return len;
    }
    if (len - 2 + sizeof(",\"count\":}\n") + 20 > cap) {
        return 0;                    /* checked first: the line stays whole */
    }

    o.len = len - 2;
    put_lit(&o, ",\"count\":");
    put_uint(&o, count);
    put(&o, "}\n", 2);

    return o.overflow ? 0 : o.len;
}
