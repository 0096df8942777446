/* password.h - scrypt password hashes: "scrypt$N$r$p$salt$hash" (base64) */
#ifndef TP_PASSWORD_H
#define TP_PASSWORD_H

#include <stddef.h>

/* malloc'd encoded hash or NULL */
char *password_hash(const char *password, long n);

/* 1 when password matches encoded, 0 otherwise (also on a bad encoding) */
int password_verify(const char *password, const char *encoded);

/* The policy: NULL when acceptable, else the reason. */
const char *password_policy(const char *password);

/* At server start: the dummy hash (cost n) and the concurrency bound of
 * slots. Without it (create-admin, unit tests) every take succeeds and
 * password_dummy() is NULL. 0, or -1. */
int password_init(long n, int slots) __attribute__((warn_unused_result));

/* A hash to verify against when the account does not exist, so that an
 * unknown address costs the same scrypt as a wrong password. */
const char *password_dummy(void);

/* One of the slots for a scrypt: 0 when taken (waited at most
 * PASSWORD_SLOT_WAIT_MS), -1 when all are busy; give it back after. */
#define PASSWORD_SLOT_WAIT_MS 10
int  password_slot_take(void) __attribute__((warn_unused_result));
void password_slot_give(void);

#endif
