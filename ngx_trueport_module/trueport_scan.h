/*
 * trueport_scan.h - finding the next of a few bytes in a buffer, for the
 * scans of prompts and responses that skip long runs of plain text.
 */
#ifndef TRUEPORT_SCAN_H
#define TRUEPORT_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif


/* The first byte at or after i that is a, b, c or d (n when none): sixteen
 * bytes at a time with SSE2, else eight with the zero-byte trick, for the
 * scans that look for a few rare bytes. */
static inline size_t
tp_find_any4(const unsigned char *t, size_t i, size_t n, unsigned a,
    unsigned b, unsigned c, unsigned d)
{
#if defined(__SSE2__)
    __m128i  va = _mm_set1_epi8((char) a), vb = _mm_set1_epi8((char) b),
             vc = _mm_set1_epi8((char) c), vd = _mm_set1_epi8((char) d), x;
    unsigned bits;

    while (i + 16 <= n) {
        x = _mm_loadu_si128((const __m128i *) (t + i));
        bits = (unsigned) _mm_movemask_epi8(
                   _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, va),
                                             _mm_cmpeq_epi8(x, vb)),
                                _mm_or_si128(_mm_cmpeq_epi8(x, vc),
                                             _mm_cmpeq_epi8(x, vd))));
        if (bits) {
            return i + __builtin_ctz(bits);
        }
        i += 16;
    }
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t x, xa, xb, xc, xd, m;

    while (i + 8 <= n) {
        memcpy(&x, t + i, 8);
        xa = x ^ (0x0101010101010101ULL * a);
        xb = x ^ (0x0101010101010101ULL * b);
        xc = x ^ (0x0101010101010101ULL * c);
        xd = x ^ (0x0101010101010101ULL * d);
        /* a zero byte in any of them; the lowest flag is exact */
        m = ((xa - 0x0101010101010101ULL) & ~xa)
            | ((xb - 0x0101010101010101ULL) & ~xb)
            | ((xc - 0x0101010101010101ULL) & ~xc)
            | ((xd - 0x0101010101010101ULL) & ~xd);
        m &= 0x8080808080808080ULL;
        if (m) {
            return i + (__builtin_ctzll(m) >> 3);
        }
        i += 8;
    }
#endif
    while (i < n && t[i] != a && t[i] != b && t[i] != c && t[i] != d) {
        i++;
    }
    return i;
}


#endif /* TRUEPORT_SCAN_H */
