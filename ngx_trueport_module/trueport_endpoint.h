/* trueport_endpoint.h - a tenant's provider endpoint (the base URL the
 * gateway will send the tenant's requests and credential to) against the
 * operator's allowlist. The sidecar checks it when a tenant admin sets it,
 * the module again before each use: the same code on both sides.
 *
 * An endpoint is "https://host[:port][/path]": no user information, query,
 * fragment, percent-escapes or dot segments; a host of letters, digits,
 * hyphens and dots, each label 1 to 63 characters, 253 at most.
 *
 * An allowlist is a list of patterns separated by commas or blanks, each
 * "[http://|https://]host[:port|:*]": https and the scheme's default port
 * unless the pattern says otherwise. A "*" in a host label matches any run
 * of characters inside that one label (never a dot): "*.openai.azure.com"
 * takes "acme.openai.azure.com", not "a.b.openai.azure.com". A wildcard
 * pattern needs two fixed labels at its end, and never matches an IP
 * literal (any spelling: dotted, decimal "2130706433", octal, hex "0x7f.1",
 * bracketed IPv6), localhost, a local-only domain (.local, .localdomain,
 * .internal, .home.arpa) or a single-label name; only a pattern without
 * "*" naming that host exactly (the operator's own choice, e.g.
 * "http://127.0.0.1:8080") does.
 *
 * Pure C: plain buffers (not NUL-terminated), no allocation, any input is
 * safe. Reasons are static strings without quotes or backslashes. */
#ifndef TRUEPORT_ENDPOINT_H
#define TRUEPORT_ENDPOINT_H

#include <stddef.h>

#define TP_ENDPOINT_ALLOW_DEFAULT  "*.openai.azure.com"

/* 0: url (len bytes) may be used under the allowlist allow (allow_len
 * bytes); -1: it may not, and *reason says why. */
int tp_endpoint_check(const char *url, size_t len, const char *allow,
                      size_t allow_len, const char **reason);

/* 0: pattern (len bytes, one pattern) is well formed; -1 and *reason. */
int tp_endpoint_pattern_valid(const char *pattern, size_t len,
                              const char **reason);

/* 0: every pattern of allow is well formed and there is at least one;
 * -1, *reason, and *bad / *bad_len the first bad pattern. */
int tp_endpoint_allow_valid(const char *allow, size_t len,
                            const char **reason, const char **bad,
                            size_t *bad_len);

#endif /* TRUEPORT_ENDPOINT_H */
