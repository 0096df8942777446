/* fuzz_usage.c - libFuzzer target for the usage extractor: any bytes, any
 * provider, JSON or SSE, gzip or not, fed in pieces the input chooses. */
#include "trueport_usage.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *m_alloc(void *c, size_t n) { (void) c; return malloc(n); }
static void *m_realloc(void *c, void *p, size_t n) { (void) c; return realloc(p, n); }
static void  m_free(void *c, void *p) { (void) c; free(p); }

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const tp_alloc_t a = { m_alloc, m_realloc, m_free, NULL };
    tp_usage_result_t       r;
    tp_usage_t             *u;
    size_t                  i, n, step;

    if (size < 2) {
        return 0;
    }
    /* byte 0: provider, stream, gzip; byte 1: piece size */
    u = tp_usage_create(&a, data[0] % TP_PROVIDERS, (data[0] >> 2) & 1,
                        (data[0] >> 3) & 1);
    step = data[1] ? data[1] : size;
    data += 2;
    size -= 2;

    for (i = 0; i < size; i += n) {
        n = size - i < step ? size - i : step;
        tp_usage_feed(u, data + i, n);
    }
    tp_usage_result(u, &r);
    if (strlen(r.model) >= TP_USAGE_MODEL_MAX) {
        abort();
    }
    tp_usage_destroy(u);
    return 0;
}
