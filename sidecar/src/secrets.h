/* secrets.h - secrets at rest: AES-256-GCM under the master key, bound to
 * the place they are stored in (AAD), "v1:" base64(nonce | ciphertext | tag) */
#ifndef TP_SECRETS_H
#define TP_SECRETS_H

#include "req.h"

#define SECRET_MAX_PLAIN 65536

/* A malloc'd "v1:..." string, or NULL (out of memory, plain too long).
 * aad (may be NULL) is authenticated, not stored: the same aad must be
 * given to decrypt. */
char *secret_encrypt(const unsigned char key[32], const char *plain,
                     const char *aad);

/* The malloc'd plaintext, or NULL when enc is malformed, was made with
 * another key or aad, or was altered. Free it with secret_free(). */
char *secret_decrypt(const unsigned char key[32], const char *enc,
                     const char *aad);

/* Wipes and frees a plaintext (NULL is fine). */
void secret_free(char *plain);

/* The AAD a tenant config secret is bound to: "tenant:<id>/<key>" written
 * into buf. */
const char *secret_tenant_aad(char *buf, size_t len, const char *tenant_id,
                              const char *key);

/* For the gateway: the tenant's own API key for provider ("openai",
 * "anthropic", "google", "azure") decrypted with cfg.master_key, malloc'd
 * (free with secret_free), or NULL when none is set, the provider is
 * unknown, or the database or the decryption fails (logged). Sends no
 * reply. Implemented in handlers/configs.c. */
char *tenant_provider_credential(req_t *r, const char *tenant_id,
                                 const char *provider);

#endif
