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

#endif
