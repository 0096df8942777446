/* fuzz_endpoint.c - libFuzzer target for the endpoint allowlist: any URL
 * under any allowlist (the first byte says where the allowlist ends).
 * Whatever is let through is an http(s) URL without user information,
 * query, fragment, escapes or blanks; under the default allowlist it is
 * exactly https://{one label}.openai.azure.com[:443][/plain path], as an
 * independent, simpler reading of the rule says. */
#include "trueport_endpoint.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int
lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}


static int
prefix(const uint8_t *s, size_t len, const char *p)
{
    size_t i, n = strlen(p);

    if (len < n) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (lower(s[i]) != p[i]) {
            return 0;
        }
    }
    return 1;
}


static int
label_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '-';
}


/* https://label.openai.azure.com[:443][/path] */
static int
default_shape(const uint8_t *s, size_t len)
{
    size_t i, start;

    if (!prefix(s, len, "https://")) {
        return 0;
    }
    for (start = i = 8; i < len && label_char(s[i]); i++) {
        /* void */
    }
    if (i == start || i - start > 63 || s[start] == '-' || s[i - 1] == '-'
        || !prefix(s + i, len - i, ".openai.azure.com"))
    {
        return 0;
    }
    i += sizeof(".openai.azure.com") - 1;
    if (prefix(s + i, len - i, ":443")) {
        i += 4;
    }
    if (i < len && s[i] != '/') {
        return 0;
    }
    for (start = i; i <= len; i++) {
        if (i == len || s[i] == '/') {
            /* no "." or ".." segment */
            if ((i - start == 2 && s[start + 1] == '.')
                || (i - start == 3 && s[start + 1] == '.'
                    && s[start + 2] == '.'))
            {
                return 0;
            }
            start = i;
        } else if (!label_char(s[i]) && s[i] != '.' && s[i] != '_'
                   && s[i] != '~')
        {
            return 0;
        }
    }
    return 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char  *reason, *bad, *url, *allow, *d = TP_ENDPOINT_ALLOW_DEFAULT;
    size_t       n, len, i, bad_len;
    int          rc;

    if (size < 1) {
        return 0;
    }

    n = data[0] < size - 1 ? data[0] : size - 1;
    allow = (const char *) data + 1;
    url = allow + n;
    len = size - 1 - n;

    if (tp_endpoint_allow_valid(allow, n, &reason, &bad, &bad_len) != 0
        && (reason == NULL || bad < allow || bad + bad_len > allow + n))
    {
        abort();
    }
    (void) tp_endpoint_pattern_valid(allow, n, &reason);

    rc = tp_endpoint_check(url, len, allow, n, &reason);
    if ((rc == -1) != (reason != NULL) || (rc != 0 && rc != -1)) {
        abort();
    }
    if (rc == 0) {
        if (!prefix((const uint8_t *) url, len, "https://")
            && !prefix((const uint8_t *) url, len, "http://"))
        {
            abort();
        }
        for (i = 0; i < len; i++) {
            if (url[i] == '@' || url[i] == '?' || url[i] == '#'
                || url[i] == '%' || url[i] == '\\'
                || (unsigned char) url[i] <= ' '
                || (unsigned char) url[i] >= 0x7f)
            {
                abort();
            }
        }
    }

    rc = tp_endpoint_check(url, len, d, strlen(d), &reason);
    if ((rc == 0) != default_shape((const uint8_t *) url, len)) {
        abort();
    }

    /* the URL as an allowlist of its own */
    (void) tp_endpoint_check(url, len, url, len, &reason);

    return 0;
}
