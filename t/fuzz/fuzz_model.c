/* fuzz_model.c - libFuzzer target for the request model scan: any bytes,
 * in pieces the input chooses; the answer must not depend on the pieces. */
#include "trueport_model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t           i, n, step;
    const char      *a, *b;
    tp_model_scan_t  whole, pieces;

    if (size < 1) {
        return 0;
    }

    step = data[0] ? data[0] : 1;
    data++;
    size--;

    tp_model_scan_init(&whole);
    tp_model_scan_feed(&whole, data, size);

    tp_model_scan_init(&pieces);
    for (i = 0; i < size; i += n) {
        n = size - i < step ? size - i : step;
        tp_model_scan_feed(&pieces, data + i, n);
    }

    a = tp_model_scan_result(&whole);
    b = tp_model_scan_result(&pieces);

    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0)
        || (a && strlen(a) >= TP_MODEL_MAX))
    {
        abort();
    }

    return 0;
}
