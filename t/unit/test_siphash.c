/* test_siphash.c - SipHash-2-4 against the reference vectors of the
 * SipHash paper (key 00..0f, messages 00..n-1 for n = 0..63), and against
 * OpenSSL's own SipHash on random keys, lengths and alignments */
#include "../../sidecar/tests/tap.h"
#include "trueport_siphash.h"

#include <stdlib.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

int tap_n, tap_failed;

/* the 8 output bytes for each length, as the reference prints them */
static const char *vectors[64] = {
    "310e0edd47db6f72",
    "fd67dc93c539f874",
    "5a4fa9d909806c0d",
    "2d7efbd796666785",
    "b7877127e09427cf",
    "8da699cd64557618",
    "cee3fe586e46c9cb",
    "37d1018bf50002ab",
    "6224939a79f5f593",
    "b0e4a90bdf82009e",
    "f3b9dd94c5bb5d7a",
    "a7ad6b22462fb3f4",
    "fbe50e86bc8f1e75",
    "903d84c02756ea14",
    "eef27a8e90ca23f7",
    "e545be4961ca29a1",
    "db9bc2577fcc2a3f",
    "9447be2cf5e99a69",
    "9cd38d96f0b3c14b",
    "bd6179a71dc96dbb",
    "98eea21af25cd6be",
    "c7673b2eb0cbf2d0",
    "883ea3e395675393",
    "c8ce5ccd8c030ca8",
    "94af49f6c650adb8",
    "eab8858ade92e1bc",
    "f315bb5bb835d817",
    "adcf6b0763612e2f",
    "a5c91da7acaa4dde",
    "716595876650a2a6",
    "28ef495c53a387ad",
    "42c341d8fa92d832",
    "ce7cf2722f512771",
    "e37859f94623f3a7",
    "381205bb1ab0e012",
    "ae97a10fd434e015",
    "b4a31508beff4d31",
    "81396229f0907902",
    "4d0cf49ee5d4dcca",
    "5c73336a76d8bf9a",
    "d0a704536ba93e0e",
    "925958fcd6420cad",
    "a915c29bc8067318",
    "952b79f3bc0aa6d4",
    "f21df2e41d4535f9",
    "87577519048f53a9",
    "10a56cf5dfcd9adb",
    "eb75095ccd986cd0",
    "51a9cb9ecba312e6",
    "96afadfc2ce666c7",
    "72fe52975a4364ee",
    "5a1645b276d592a1",
    "b274cb8ebf87870a",
    "6f9bb4203de7b381",
    "eaecb2a30b22a87f",
    "9924a43cc1315724",
    "bd838d3aafbf8db7",
    "0b1a2a3265d51aea",
    "135079a3231ce660",
    "932b2846e4d70666",
    "e1915f5cb1eca46c",
    "f325965ca16d629f",
    "575ff28e60381be5",
    "724506eb4c328a95",
};


static void
bytes_of(uint64_t h, unsigned char out[8])
{
    int  i;

    for (i = 0; i < 8; i++) {
        out[i] = (unsigned char) (h >> (8 * i));
    }
}


static void
hex_of(const unsigned char *p, size_t n, char *out)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", p[i]);
    }
}


/* OpenSSL's SIPHASH MAC with an 8-byte output: 0, or -1 when unavailable */
static int
openssl_siphash(const unsigned char *key, const unsigned char *in, size_t n,
    unsigned char out[8])
{
    int          rc;
    size_t       len;
    EVP_MAC     *mac;
    OSSL_PARAM   params[2];
    EVP_MAC_CTX *ctx;
    size_t       size = 8;

    mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    if (mac == NULL) {
        return -1;
    }

    ctx = EVP_MAC_CTX_new(mac);
    params[0] = OSSL_PARAM_construct_size_t("size", &size);
    params[1] = OSSL_PARAM_construct_end();

    rc = (ctx != NULL
          && EVP_MAC_init(ctx, key, TP_SIPHASH_KEY_LEN, params) == 1
          && EVP_MAC_update(ctx, in, n) == 1
          && EVP_MAC_final(ctx, out, &len, 8) == 1
          && len == 8) ? 0 : -1;

    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);

    return rc;
}


int
main(void)
{
    int            i, bad, have;
    char           hex[17];
    size_t         n, off;
    unsigned char  key[TP_SIPHASH_KEY_LEN], msg[64], out[8], want[8];
    unsigned char  buf[300];

    for (i = 0; i < TP_SIPHASH_KEY_LEN; i++) {
        key[i] = (unsigned char) i;
    }

    for (i = 0; i < 64; i++) {
        msg[i] = (unsigned char) i;
    }

    bad = 0;

    for (n = 0; n < 64; n++) {
        bytes_of(tp_siphash24(key, msg, n), out);
        hex_of(out, 8, hex);

        if (strcmp(hex, vectors[n]) != 0) {
            printf("# length %zu: got %s, want %s\n", n, hex, vectors[n]);
            bad++;
        }
    }

    is_int(bad, 0, "the 64 reference vectors of SipHash-2-4");

    /* the same input at every alignment gives the same hash */

    bad = 0;

    for (off = 1; off < 8; off++) {
        memcpy(buf + off, msg, 63);
        bad += tp_siphash24(key, buf + off, 63) != tp_siphash24(key, msg, 63);
    }

    is_int(bad, 0, "unaligned input");

    /* random keys, inputs and lengths: the same as OpenSSL's SIPHASH */

    bad = 0;
    have = 1;

    for (i = 0; i < 2000 && have; i++) {
        n = (size_t) (i % 257);
        off = (size_t) (i % 7);

        if (RAND_bytes(key, sizeof(key)) != 1
            || RAND_bytes(buf + off, (int) n + 1) != 1)
        {
            have = 0;
            break;
        }

        if (openssl_siphash(key, buf + off, n, want) != 0) {
            have = 0;
            break;
        }

        bytes_of(tp_siphash24(key, buf + off, n), out);
        bad += memcmp(out, want, 8) != 0;
    }

    ok(have, "OpenSSL's SIPHASH is there to compare with");
    is_int(bad, 0, "2000 random inputs (lengths 0..256): as OpenSSL has them");

    /* the key matters: one bit of it changes about half the output bits */

    memset(key, 0, sizeof(key));
    {
        uint64_t  a, b;
        int       bits;

        a = tp_siphash24(key, "sk-same-input", 13);
        key[15] ^= 0x80;
        b = tp_siphash24(key, "sk-same-input", 13);
        bits = __builtin_popcountll(a ^ b);
        ok(bits > 16 && bits < 48, "another key, another hash (%d bits differ)",
           bits);
    }

    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
