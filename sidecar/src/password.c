/* password.c - scrypt via OpenSSL's EVP_PBE_scrypt, constant-time compare,
 * and the bound on how many run at once: each costs ~220 ms of a core and
 * 32 MiB at N=2^15, and a flood of them must not take every thread. */
#include "password.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SALT_LEN 16
#define HASH_LEN 32
#define SCRYPT_R 8
#define SCRYPT_P 1
/* N=2^15, r=8 needs 32 MiB; leave headroom */
#define SCRYPT_MAXMEM (256UL * 1024 * 1024)

static sem_t  slots;
static int    slots_on;
static char  *dummy;


const char *
password_policy(const char *pw)
{
    size_t n = strlen(pw), i, chars = 0;

    /* count characters, not bytes: a UTF-8 passphrase counts as typed */
    for (i = 0; i < n; i++) {
        if (((unsigned char) pw[i] & 0xc0) != 0x80) {
            chars++;
        }
    }
    if (chars < 10) {
        return "password must be at least 10 characters";
    }
    if (n > 1024) {
        return "password must be at most 1024 bytes";
    }
    return NULL;
}


static int
derive(const char *pw, const unsigned char *salt, size_t saltlen, long n,
    long r, long p, unsigned char *out, size_t outlen)
{
    return EVP_PBE_scrypt(pw, strlen(pw), salt, saltlen, (uint64_t) n,
                          (uint64_t) r, (uint64_t) p, SCRYPT_MAXMEM, out,
                          outlen) == 1 ? 0 : -1;
}


char *
password_hash(const char *pw, long n)
{
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    char          salt64[64], hash64[64], *out;

    if (RAND_bytes(salt, sizeof(salt)) != 1
        || derive(pw, salt, sizeof(salt), n, SCRYPT_R, SCRYPT_P, hash,
                  sizeof(hash)) != 0)
    {
        return NULL;
    }

    EVP_EncodeBlock((unsigned char *) salt64, salt, sizeof(salt));
    EVP_EncodeBlock((unsigned char *) hash64, hash, sizeof(hash));

    out = malloc(200);
    if (out != NULL) {
        snprintf(out, 200, "scrypt$%ld$%d$%d$%s$%s", n, SCRYPT_R, SCRYPT_P,
                 salt64, hash64);
    }
    return out;
}


int
password_verify(const char *pw, const char *encoded)
{
    unsigned char salt[64], want[64], got[HASH_LEN];
    char          salt64[80], hash64[80];
    long          n, r, p;
    int           saltlen, wantlen;

    if (encoded == NULL
        || sscanf(encoded, "scrypt$%ld$%ld$%ld$%79[^$]$%79s", &n, &r, &p,
                  salt64, hash64) != 5
        || n < 2 || n > (1L << 20) || r < 1 || r > 32 || p < 1 || p > 16)
    {
        return 0;
    }

    saltlen = EVP_DecodeBlock(salt, (unsigned char *) salt64,
                              (int) strlen(salt64));
    wantlen = EVP_DecodeBlock(want, (unsigned char *) hash64,
                              (int) strlen(hash64));
    /* EVP_DecodeBlock counts the '=' padding as zero bytes */
    if (saltlen < SALT_LEN || wantlen < HASH_LEN) {
        return 0;
    }

    if (derive(pw, salt, SALT_LEN, n, r, p, got, sizeof(got)) != 0) {
        return 0;
    }
    return CRYPTO_memcmp(got, want, HASH_LEN) == 0;
}


int
password_init(long n, int nslots)
{
    free(dummy);
    dummy = password_hash("not a password: timing equaliser", n);
    if (dummy == NULL || nslots < 1 || slots_on
        || sem_init(&slots, 0, (unsigned int) nslots) != 0)
    {
        return -1;
    }
    slots_on = 1;
    return 0;
}


const char *
password_dummy(void)
{
    return dummy;
}


int
password_slot_take(void)
{
    struct timespec ts;

    if (!slots_on) {
        return 0;
    }
    if (sem_trywait(&slots) == 0) {
        return 0;
    }
    /* a short wait absorbs a burst; a longer one would hold this thread
     * (and every connection it serves) hostage to the flood */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += PASSWORD_SLOT_WAIT_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (sem_timedwait(&slots, &ts) != 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return 0;
}


void
password_slot_give(void)
{
    if (slots_on) {
        sem_post(&slots);
    }
}
