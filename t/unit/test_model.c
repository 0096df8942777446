/* test_model.c - the request's top-level "model", fed whole and in every
 * split, never a nested one, nothing from malformed bodies */
#include "../../sidecar/tests/tap.h"
#include "trueport_model.h"

#include <stdlib.h>

int tap_n, tap_failed;

static char got[TP_MODEL_MAX];

/* the model of body fed in pieces of step bytes; "" when none */
static const char *
scan(const char *body, size_t step)
{
    size_t           i, n, len = strlen(body);
    const char      *m;
    tp_model_scan_t  s;

    tp_model_scan_init(&s);

    for (i = 0; i < len; i += n) {
        n = len - i < step ? len - i : step;
        if (tp_model_scan_feed(&s, (const unsigned char *) body + i, n)) {
            break;
        }
    }

    m = tp_model_scan_result(&s);
    snprintf(got, sizeof(got), "%s", m ? m : "");
    return got;
}

/* the same answer whole and in every piece size up to 7 */
static void
check(const char *body, const char *want, const char *name)
{
    size_t  step;
    int     same = 1;

    is_str(scan(body, strlen(body) + 1), want, "%s", name);

    for (step = 1; step < 8; step++) {
        if (strcmp(scan(body, step), want) != 0) {
            same = 0;
            printf("# step %zu: got \"%s\"\n", step, got);
        }
    }
    ok(same, "%s: the same in pieces of 1..7 bytes", name);
}

int
main(void)
{
    char  big[8192];

    check("{\"model\":\"gpt-4o-mini\",\"messages\":[]}", "gpt-4o-mini",
          "model first");
    check(" {\n \"messages\" : [{\"role\":\"user\",\"content\":\"x\"}],"
          " \"stream\": true, \"max_tokens\": 12 , \"model\" : \"gpt-4o\" }",
          "gpt-4o", "model last, after an array, a bool and a number");
    check("{\"messages\":[{\"model\":\"inner\"}],\"model\":\"outer\"}",
          "outer", "a nested \"model\" is not the request's");
    check("{\"metadata\":{\"model\":\"inner\"}}", "", "only a nested one: none");
    check("{\"messages\":[\"a \\\"model\\\": \\\"x\\\" }\"],\"model\":\"m\"}",
          "m", "escaped quotes inside strings are skipped");
    check("{\"models\":\"no\",\"mode\":\"no\",\"model\":\"yes\"}", "yes",
          "keys that only look like it");
    check("{\"mod\\u0065l\":\"esc\",\"model\":\"plain\"}", "plain",
          "an escaped key is not compared");
    check("{\"model\":\"a\\/b\\\"c\"}", "a/b\"c", "\\/ and \\\" decoded");
    check("{\"model\":\"caf\\u00e9\"}", "", "other escapes: no model");
    check("{\"model\":42}", "", "a number is no model");
    check("{\"model\":null,\"x\":1}", "", "null is no model");
    check("[{\"model\":\"x\"}]", "", "an array body has none");
    check("{\"a\":1}{\"model\":\"late\"}", "", "nothing after the object");
    check("{\"model\":\"cut", "", "a cut body gives none");
    check("", "", "empty body");
    check("{\"a\":tru,\"model\":\"x\"}", "x", "scalars are skipped loosely");
    check("{\"a\" 1,\"model\":\"x\"}", "", "no colon: malformed");

    memset(big, 'x', sizeof(big));
    memcpy(big, "{\"model\":\"", 10);
    big[sizeof(big) - 3] = '"';
    big[sizeof(big) - 2] = '\0';
    strcat(big, "}");
    is_int(strlen(scan(big, 100)), TP_MODEL_MAX - 1,
           "a long value is cut to TP_MODEL_MAX - 1");

    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
