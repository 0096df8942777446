/* trueport_siphash.h - SipHash-2-4 (Aumasson and Bernstein, 2012), the
 * keyed hash that picks the buckets of the shared zone's tables: with a
 * secret key nobody outside can compute which inputs share a bucket, so
 * nobody can send a set of keys that chain up in one.
 *
 * Pure C, no allocation, any input is safe. The 64-bit result is the
 * reference implementation's 8 output bytes read as a little-endian
 * number. */
#ifndef TRUEPORT_SIPHASH_H
#define TRUEPORT_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define TP_SIPHASH_KEY_LEN  16

uint64_t tp_siphash24(const unsigned char key[TP_SIPHASH_KEY_LEN],
                      const void *data, size_t len);

#endif /* TRUEPORT_SIPHASH_H */
