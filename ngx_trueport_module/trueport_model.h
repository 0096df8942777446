/* trueport_model.h - the "model" member of a request's JSON body, found by
 * a streaming scan over the body's pieces as nginx holds them (memory
 * buffers, or a temp file read back in blocks). The metering records it
 * when the response names no model (an upstream error, a cut-off stream).
 *
 * Only the top-level object's "model" counts, and only a string value; a
 * "model" inside messages or tools is skipped, as is anything after the
 * top-level object ends. No allocation; constant state; any byte sequence
 * is safe (malformed JSON just yields no model). Escapes in the value are
 * decoded for \" \\ \/ only (model names carry none; others stop the
 * value). */
#ifndef TRUEPORT_MODEL_H
#define TRUEPORT_MODEL_H

#include <stddef.h>

#define TP_MODEL_MAX  96

typedef struct {
    unsigned  depth;         /* of containers we are in */
    unsigned  state;         /* TP_MS_* in trueport_model.c */
    unsigned  key_len;       /* bytes of the current top-level key */
    unsigned  len;           /* of model */
    char      key[8];        /* enough to tell "model" from the rest */
    char      model[TP_MODEL_MAX];
    unsigned  in_str:1;      /* inside a string below the top level */
    unsigned  esc:1;         /* after a backslash */
    unsigned  key_model:1;   /* the key just read was "model" */
    unsigned  done:1;        /* found, or the top-level object ended */
} tp_model_scan_t;

void tp_model_scan_init(tp_model_scan_t *s);

/* Feeds the next piece of the body; returns 1 once the scan is over (the
 * rest of the body need not be fed), 0 otherwise. */
int tp_model_scan_feed(tp_model_scan_t *s, const unsigned char *p,
                       size_t len);

/* The model found, NUL-ended, or NULL. */
const char *tp_model_scan_result(const tp_model_scan_t *s);

#endif /* TRUEPORT_MODEL_H */
