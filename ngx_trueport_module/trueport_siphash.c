/* trueport_siphash.c - SipHash-2-4 (trueport_siphash.h): two compression
 * rounds per 8-byte word, four finalization rounds. */
#include "trueport_siphash.h"


#define TP_ROTL(x, b)  (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

#define TP_SIPROUND(v0, v1, v2, v3)                                        \
    do {                                                                  \
        v0 += v1; v1 = TP_ROTL(v1, 13); v1 ^= v0; v0 = TP_ROTL(v0, 32);   \
        v2 += v3; v3 = TP_ROTL(v3, 16); v3 ^= v2;                         \
        v0 += v3; v3 = TP_ROTL(v3, 21); v3 ^= v0;                         \
        v2 += v1; v1 = TP_ROTL(v1, 17); v1 ^= v2; v2 = TP_ROTL(v2, 32);   \
    } while (0)


/* a little-endian word of n bytes (n <= 8), whatever the host's order */

static uint64_t
tp_le64(const unsigned char *p, size_t n)
{
    size_t    i;
    uint64_t  w;

    w = 0;

    for (i = 0; i < n; i++) {
        w |= (uint64_t) p[i] << (8 * i);
    }

    return w;
}


uint64_t
tp_siphash24(const unsigned char key[TP_SIPHASH_KEY_LEN], const void *data,
    size_t len)
{
    size_t               left;
    uint64_t             k0, k1, v0, v1, v2, v3, m;
    const unsigned char  *p, *end;

    k0 = tp_le64(key, 8);
    k1 = tp_le64(key + 8, 8);

    /* "somepseudorandomlygeneratedbytes" */
    v0 = k0 ^ 0x736f6d6570736575ULL;
    v1 = k1 ^ 0x646f72616e646f6dULL;
    v2 = k0 ^ 0x6c7967656e657261ULL;
    v3 = k1 ^ 0x7465646279746573ULL;

    p = data;
    left = len & 7;
    end = p + (len - left);

    for ( /* void */ ; p != end; p += 8) {
        m = tp_le64(p, 8);
        v3 ^= m;
        TP_SIPROUND(v0, v1, v2, v3);
        TP_SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }

    /* the last word: the bytes left over, the length's low byte on top */

    m = tp_le64(p, left) | ((uint64_t) (len & 0xff) << 56);

    v3 ^= m;
    TP_SIPROUND(v0, v1, v2, v3);
    TP_SIPROUND(v0, v1, v2, v3);
    v0 ^= m;

    v2 ^= 0xff;
    TP_SIPROUND(v0, v1, v2, v3);
    TP_SIPROUND(v0, v1, v2, v3);
    TP_SIPROUND(v0, v1, v2, v3);
    TP_SIPROUND(v0, v1, v2, v3);

    return v0 ^ v1 ^ v2 ^ v3;
}
