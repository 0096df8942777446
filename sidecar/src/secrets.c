/* secrets.c - AES-256-GCM for secrets at rest (provider API keys): a fresh
 * 96-bit nonce per value, the 128-bit tag checked before anything is
 * returned, the storage location as AAD so a ciphertext cannot be moved */
#include "secrets.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONCE_LEN   12
#define TAG_LEN     16
#define PREFIX      "v1:"
#define PREFIX_LEN  3


/* 1: encrypt, 0: decrypt. out gets in_len bytes. 0 or -1 (bad tag too). */
static int
gcm(int enc, const unsigned char key[32], const unsigned char *nonce,
    const char *aad, const unsigned char *in, int in_len, unsigned char *out,
    unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx;
    int             n, rc = -1;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL)
           != 1
        || EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
    {
        goto done;
    }

    if (aad != NULL && *aad != '\0'
        && EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *) aad,
                            (int) strlen(aad)) != 1)
    {
        goto done;
    }

    if (in_len > 0 && EVP_CipherUpdate(ctx, out, &n, in, in_len) != 1) {
        goto done;
    }

    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag)
                != 1)
    {
        goto done;
    }

    /* for decryption this is where the tag is checked */
    if (EVP_CipherFinal_ex(ctx, out + (in_len > 0 ? n : 0), &n) != 1) {
        goto done;
    }

    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag)
               != 1)
    {
        goto done;
    }
    rc = 0;

done:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}


char *
secret_encrypt(const unsigned char key[32], const char *plain,
    const char *aad)
{
    unsigned char *raw;
    char          *out;
    size_t         plen, rlen;

    if (plain == NULL || (plen = strlen(plain)) > SECRET_MAX_PLAIN) {
        return NULL;
    }

    rlen = NONCE_LEN + plen + TAG_LEN;
    raw = malloc(rlen);
    out = malloc(PREFIX_LEN + 4 * ((rlen + 2) / 3) + 1);
    if (raw == NULL || out == NULL) {
        goto fail;
    }

    if (RAND_bytes(raw, NONCE_LEN) != 1
        || gcm(1, key, raw, aad, (const unsigned char *) plain, (int) plen,
               raw + NONCE_LEN, raw + NONCE_LEN + plen) != 0)
    {
        goto fail;
    }

    memcpy(out, PREFIX, PREFIX_LEN);
    EVP_EncodeBlock((unsigned char *) out + PREFIX_LEN, raw, (int) rlen);

    OPENSSL_cleanse(raw, rlen);
    free(raw);
    return out;

fail:
    if (raw != NULL) {
        OPENSSL_cleanse(raw, rlen);
    }
    free(raw);
    free(out);
    return NULL;
}


char *
secret_decrypt(const unsigned char key[32], const char *enc,
    const char *aad)
{
    const char    *b64;
    unsigned char *raw = NULL;
    char          *plain = NULL;
    size_t         blen;
    int            rlen, plen;

    if (enc == NULL || strncmp(enc, PREFIX, PREFIX_LEN) != 0) {
        return NULL;
    }
    b64 = enc + PREFIX_LEN;
    blen = strlen(b64);

    /* whole base64 quanta only, and room for at least nonce and tag */
    if (blen % 4 != 0 || blen < 4 * ((NONCE_LEN + TAG_LEN + 2) / 3)
        || blen > 4 * ((NONCE_LEN + SECRET_MAX_PLAIN + TAG_LEN + 2) / 3))
    {
        return NULL;
    }

    raw = malloc(blen / 4 * 3);
    if (raw == NULL) {
        return NULL;
    }
    rlen = EVP_DecodeBlock(raw, (const unsigned char *) b64, (int) blen);
    if (rlen < 0) {
        goto done;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes */
    if (b64[blen - 1] == '=') {
        rlen--;
        if (b64[blen - 2] == '=') {
            rlen--;
        }
    }
    plen = rlen - NONCE_LEN - TAG_LEN;
    if (plen < 0) {
        goto done;
    }

    plain = malloc((size_t) plen + 1);
    if (plain == NULL) {
        goto done;
    }
    if (gcm(0, key, raw, aad, raw + NONCE_LEN, plen, (unsigned char *) plain,
            raw + NONCE_LEN + plen) != 0
        || memchr(plain, '\0', (size_t) plen) != NULL)
    {
        OPENSSL_cleanse(plain, (size_t) plen);
        free(plain);
        plain = NULL;
        goto done;
    }
    plain[plen] = '\0';

done:
    OPENSSL_cleanse(raw, blen / 4 * 3);
    free(raw);
    return plain;
}


void
secret_free(char *plain)
{
    if (plain != NULL) {
        OPENSSL_cleanse(plain, strlen(plain));
        free(plain);
    }
}


const char *
secret_tenant_aad(char *buf, size_t len, const char *tenant_id,
    const char *key)
{
    snprintf(buf, len, "tenant:%s/%s", tenant_id, key);
    return buf;
}
