/* fuzz_gateway.c - libFuzzer target for the gateway's parsers: any bytes
 * as a key lookup answer, a Bearer header and a query string (found,
 * stripped, redacted). */
#include "trueport_gateway.h"

#include <stdint.h>
#include <string.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tp_resolve_t   r;
    static unsigned char  out[65536];
    const unsigned char  *v;
    size_t                n;
    char                  err[128];

    (void) tp_resolve_parse(data, size, &r, err, sizeof(err));
    (void) tp_key_from_bearer(data, size, &v, &n);
    (void) tp_key_valid(data, size);

    if (size <= sizeof(out)) {
        if (tp_args_get(data, size, "key", &v, &n) == 0) {
            (void) tp_args_unescape(v, n, out);
        }
        (void) tp_args_strip(data, size, "key", out);

        /* the measured length is what is written */
        n = tp_args_redact(data, size, "key", "[redacted]", NULL);
        if (n && n <= sizeof(out)
            && tp_args_redact(data, size, "key", "[redacted]", out) != n)
        {
            __builtin_trap();
        }
    }

    return 0;
}
