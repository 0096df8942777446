/* mail.h - outgoing mail: an outbox table, delivered by sendmail when set */
#ifndef TP_MAIL_H
#define TP_MAIL_H

#include "req.h"

#include <libpq-fe.h>

/* Queues one plain-text (UTF-8) message in the outbox table, inside the
 * caller's transaction if one is open, so the mail exists exactly when the
 * change that caused it commits. When TRUEPORT_SENDMAIL is set, a
 * background thread pipes committed messages to `sendmail -t -i`, sets
 * sent_at and clears the body; the request never waits for delivery. In
 * dev mode the message
 * (OTP codes, reset and invite tokens included) is also logged at info
 * level; never in production mode. to must be a validated address.
 * 0, or -1 with the error reply sent. */
int mail_send(req_t *r, const char *to, const char *subject, const char *body)
    __attribute__((warn_unused_result));

/* Starts the delivery thread when TRUEPORT_SENDMAIL is set (idempotent;
 * mail_send starts it too). Call at boot to flush mail left unsent by an
 * earlier run. 0, or -1 when the thread cannot be created. */
int mail_start(void) __attribute__((warn_unused_result));

/* Clears the bodies of outbox rows too old to be sent and deletes rows
 * older than TRUEPORT_OUTBOX_RETENTION_DAYS (mail_send does a little of
 * this each time; the retention job calls this). Rows changed, or -1. */
long long mail_sweep(PGconn *c);

#endif
