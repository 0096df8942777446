/* handlers/auth.c - identity: register, sign in (password or emailed code),
 * password reset and change, and trading a global token for a scoped one.
 * Sign-in failures are limited in Postgres, so the limits hold across
 * threads and sidecars: per (email, client address), and per account
 * (email) whatever the address. */
#include "handlers.h"
#include "../auth.h"
#include "../config.h"
#include "../log.h"
#include "../mail.h"
#include "../password.h"
#include "../token.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EMAIL_MAX           320
#define NAME_MAX_CHARS      200
#define PASSWORD_MAX        1024    /* bytes; password_policy() agrees */

/* 10 failures per 15 minutes per (email, client address) */
#define LOGIN_MAX_FAILURES  "10"
#define LOGIN_WINDOW        "15 minutes"

/* per account, from any number of addresses: 50 failures in 24 hours
 * lock it until a password reset by mail (0012_account_guard.sql) */
#define ACCOUNT_MAX_FAILURES "50"
#define ACCOUNT_WINDOW      "24 hours"

#define OTP_TTL             "10 minutes"
#define OTP_TTL_S           600
#define OTP_MAX_TRIES       "5"

/* per account, across codes (a new code does not reset it): 10 wrong
 * codes per 15 minutes; with 10^6 codes and the lock above, an attacker
 * gets at most 50 guesses before the owner must reset */
#define OTP_ACCOUNT_MAX     "10"
#define OTP_ACCOUNT_WINDOW  "15 minutes"

#define RESET_TTL           "1 hour"
#define RESET_TTL_S         3600
#define RESET_TOKEN_BYTES   32

/* the answer to otp/request and forgot-password, whoever asks */
#define SENT_STATUS         202

/* at most 5 codes (and 5 reset mails) per address per 15 minutes: more
 * requests get the same 202 and send nothing, so nobody can flood a
 * mailbox through us */
#define MAIL_BURST          "5"
#define MAIL_BURST_WINDOW   "15 minutes"

#define SUBJECT_OTP         "Your TruePort sign-in code"
#define SUBJECT_RESET       "Reset your TruePort password"


/* ---- small pure helpers ------------------------------------------------ */

static void
sha256_hex(const void *data, size_t n, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char     md[32];
    unsigned int      mdlen = 0;
    int               i;

    EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL);
    for (i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}


/* unpadded base64url */
static void
b64url(const unsigned char *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "abcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t            i, o = 0;
    uint32_t          v;

    for (i = 0; i + 2 < n; i += 3) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = abc[v >> 6 & 63];
        out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        v = (uint32_t) in[i] << 16;
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
    } else if (n - i == 2) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = abc[v >> 6 & 63];
    }
    out[o] = '\0';
}


/* six uniform decimal digits: 4294000000 is the largest multiple of 10^6
 * below 2^32, so rejecting above it leaves no modulo bias */
static int
otp_new(char out[7])
{
    uint32_t v;

    do {
        if (RAND_bytes((unsigned char *) &v, sizeof(v)) != 1) {
            return -1;
        }
    } while (v >= 4294000000u);

    snprintf(out, 7, "%06u", (unsigned) (v % 1000000u));
    return 0;
}


/* SHA-256 of "<user id>:<code>": the user id keeps equal codes of two
 * users from having equal hashes */
static void
otp_hash(const char *user_id, const char *code, char out[65])
{
    char buf[64];
    int  n;

    n = snprintf(buf, sizeof(buf), "%s:%s", user_id, code);
    sha256_hex(buf, (size_t) n, out);
}


static int
is_otp_code(const char *s)
{
    int i;

    for (i = 0; i < 6; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return s[6] == '\0';
}


/* ---- validate-or-reply helpers ---------------------------------------- */

/* "email": trimmed, lowercased, a plausible address of at most 320 */
static int
body_email(req_t *r, yajl_val body, char out[EMAIL_MAX + 1])
{
    const char *s, *e;

    if (req_field_str(r, body, "email", F_REQUIRED, 1024, &s) != 0) {
        return -1;
    }
    while (isspace((unsigned char) *s)) {
        s++;
    }
    e = s + strlen(s);
    while (e > s && isspace((unsigned char) e[-1])) {
        e--;
    }
    return org_email(r, arena_strndup(&r->arena, s, e - s), out,
                     EMAIL_MAX + 1);
}


static int
check_policy(req_t *r, const char *field, const char *pw)
{
    const char *why = password_policy(pw);

    if (why != NULL) {
        reply_error(r, 422, "weak_password", "\"%s\": %s", field, why);
        return -1;
    }
    return 0;
}


/* optional "name": trimmed, at most 200 characters, no control characters */
static int
body_name(req_t *r, yajl_val body, const char **out)
{
    const char *s, *e, *p;
    size_t      chars = 0;

    if (req_field_str(r, body, "name", F_NULLABLE, 4096, &s) != 0) {
        return -1;
    }
    if (s == NULL) {
        *out = "";
        return 0;
    }
    while (isspace((unsigned char) *s)) {
        s++;
    }
    e = s + strlen(s);
    while (e > s && isspace((unsigned char) e[-1])) {
        e--;
    }
    for (p = s; p < e; p++) {
        if ((unsigned char) *p < 0x20 || *p == 0x7f) {
            chars = NAME_MAX_CHARS + 1;
            break;
        }
        if (((unsigned char) *p & 0xc0) != 0x80) {
            chars++;
        }
    }
    if (chars > NAME_MAX_CHARS) {
        reply_error(r, 422, "invalid_field",
                    "\"name\" must be at most 200 characters, without control"
                    " characters");
        return -1;
    }
    *out = arena_strndup(&r->arena, s, e - s);
    return 0;
}


/* ---- the sign-in limit ------------------------------------------------- */

/* Admits one sign-in attempt for (email, client address) or answers 429.
 * The check and the insert run under a transaction-scoped advisory lock on
 * the pair, so concurrent attempts (other threads, other sidecars) cannot
 * slip past the count. The attempt is recorded before the secret is
 * checked; login_forget() removes the pair's rows on success, so what
 * stays in the log are failures. A refused (429) attempt is not recorded:
 * Retry-After is when the oldest counted failure leaves the window, and
 * hammering does not push it further away. */
static int
login_guard(req_t *r, const char *email)
{
    PGresult  *res;
    long long  wait;

    if (db_begin(r) != 0
        || dbq(r, "SELECT pg_advisory_xact_lock("
                  "hashtextextended('login:' || $1 || ' ' || $2, 0))", 2,
               email, r->client_ip) == NULL)
    {
        return -1;
    }

    res = dbq(r,
              "SELECT count(*), ceil(extract(epoch FROM min(created_at)"
              "  + interval '" LOGIN_WINDOW "' - now()))::bigint"
              " FROM (SELECT created_at FROM login_attempts"
              "  WHERE email = $1 AND client_ip = $2"
              "  AND created_at > now() - interval '" LOGIN_WINDOW "'"
              "  ORDER BY created_at DESC LIMIT " LOGIN_MAX_FAILURES ") a", 2,
              email, r->client_ip);
    if (res == NULL) {
        return -1;
    }

    if (atoll(PQgetvalue(res, 0, 0)) >= atoll(LOGIN_MAX_FAILURES)) {
        wait = atoll(PQgetvalue(res, 0, 1));
        if (wait < 1) {
            wait = 1;
        }
        db_rollback(r);
        r->retry_after = arena_sprintf(&r->arena, "%lld", wait);
        reply_error(r, 429, "too_many_attempts",
                    "too many failed sign-in attempts for this address;"
                    " retry in %lld seconds", wait);
        return -1;
    }

    /* the insert, and a bounded sweep of rows that left the window */
    if (dbq(r, "INSERT INTO login_attempts (email, client_ip)"
               " VALUES ($1, $2)", 2, email, r->client_ip) == NULL
        || dbq(r, "DELETE FROM login_attempts WHERE id IN"
                  " (SELECT id FROM login_attempts"
                  "  WHERE created_at <= now() - interval '" LOGIN_WINDOW "'"
                  "  ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED)",
               0) == NULL
        || db_commit(r) != 0)
    {
        return -1;
    }
    return 0;
}


/* A success resets the count: for this client address, or (after a
 * password reset, which proves the mailbox) for every address. Best
 * effort: a failure here only leaves failures counted. */
static void
login_forget(req_t *r, const char *email, int every_address)
{
    const char *state;

    if (dbq_try(r, &state,
                "DELETE FROM login_attempts WHERE email = $1"
                " AND ($2::text IS NULL OR client_ip = $2)", 2,
                email, every_address ? NULL : r->client_ip) == NULL)
    {
        log_warn("req=%s msg=\"cannot reset the sign-in count\" sqlstate=%s",
                 r->id, state[0] ? state : "-");
    }
}


/* ---- the per-account budget ----------------------------------------- */

/* The attempt that spends the budget says so in the log when it ends
 * without success (no email: the request line has the client). */
static void
account_lock_note(void *p)
{
    req_t *r = p;

    if (r->status != 200) {
        log_warn("req=%s msg=\"account locked: " ACCOUNT_MAX_FAILURES
                 " failed sign-ins in " ACCOUNT_WINDOW "; a password reset"
                 " unlocks it\"", r->id);
    }
}


/* Reserves one failure of the account's budget (and, for a code, of its
 * code budget) before the secret is checked, or answers: 403 once the
 * account is locked, 429 while the code budget is spent. The reservation
 * is one statement under the row lock, so concurrent attempts from any
 * thread or sidecar cannot slip past the count; a row it does not update
 * (budget spent) comes back empty. account_release() gives it back on
 * success. The row is the email's, known or not: an unknown address is
 * counted, locked and answered the same way. */
static int
account_guard(req_t *r, const char *email, int otp)
{
    const char *o = otp ? "1" : "0";
    PGresult   *res;
    long long   wait;

    res = dbq(r,
              "INSERT INTO account_guard AS g (email, failures, otp_failures)"
              " VALUES ($1, 1, $2::int)"
              " ON CONFLICT (email) DO UPDATE SET"
              "  failures = CASE WHEN g.failures = 0 OR g.window_start"
              "   <= now() - interval '" ACCOUNT_WINDOW "' THEN 1"
              "   ELSE g.failures + 1 END,"
              "  window_start = CASE WHEN g.failures = 0 OR g.window_start"
              "   <= now() - interval '" ACCOUNT_WINDOW "' THEN now()"
              "   ELSE g.window_start END,"
              "  otp_failures = CASE WHEN $2::int = 0 THEN g.otp_failures"
              "   WHEN g.otp_failures = 0 OR g.otp_window_start"
              "   <= now() - interval '" OTP_ACCOUNT_WINDOW "' THEN 1"
              "   ELSE g.otp_failures + 1 END,"
              "  otp_window_start = CASE WHEN $2::int = 1"
              "   AND (g.otp_failures = 0 OR g.otp_window_start"
              "   <= now() - interval '" OTP_ACCOUNT_WINDOW "') THEN now()"
              "   ELSE g.otp_window_start END"
              " WHERE g.failures < " ACCOUNT_MAX_FAILURES
              "  AND ($2::int = 0 OR g.otp_failures < " OTP_ACCOUNT_MAX
              "   OR g.otp_window_start"
              "   <= now() - interval '" OTP_ACCOUNT_WINDOW "')"
              " RETURNING failures", 2, email, o);
    if (res == NULL) {
        return -1;
    }
    if (PQntuples(res) == 1) {
        /* and a bounded sweep of rows whose windows are over */
        if (dbq(r, "DELETE FROM account_guard WHERE email IN"
                   " (SELECT email FROM account_guard"
                   "  WHERE failures < " ACCOUNT_MAX_FAILURES
                   "  AND window_start <= now() - interval '" ACCOUNT_WINDOW
                   "' AND otp_window_start"
                   "  <= now() - interval '" OTP_ACCOUNT_WINDOW "'"
                   "  ORDER BY window_start LIMIT 100"
                   "  FOR UPDATE SKIP LOCKED)", 0) == NULL)
        {
            return -1;
        }
        if (atoi(PQgetvalue(res, 0, 0)) == atoi(ACCOUNT_MAX_FAILURES)) {
            req_defer(r, account_lock_note, r);
        }
        return 0;
    }

    res = dbq(r, "SELECT failures >= " ACCOUNT_MAX_FAILURES ","
                 " ceil(extract(epoch FROM otp_window_start"
                 "  + interval '" OTP_ACCOUNT_WINDOW "' - now()))::bigint"
                 " FROM account_guard WHERE email = $1", 1, email);
    if (res == NULL) {
        return -1;
    }
    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] == 't') {
        reply_error(r, 403, "account_locked",
                    "too many failed sign-in attempts for this account;"
                    " reset the password (forgot-password) to unlock it");
        return -1;
    }
    wait = atoll(PQgetvalue(res, 0, 1));
    if (wait < 1) {
        wait = 1;
    }
    r->retry_after = arena_sprintf(&r->arena, "%lld", wait);
    reply_error(r, 429, "too_many_attempts",
                "too many wrong codes for this account; retry in %lld"
                " seconds", wait);
    return -1;
}


/* A success gives its reservation back. Best effort, like login_forget. */
static void
account_release(req_t *r, const char *email, int otp)
{
    const char *state;

    if (dbq_try(r, &state,
                "UPDATE account_guard SET failures = greatest(failures - 1, 0),"
                " otp_failures = greatest(otp_failures - $2::int, 0)"
                " WHERE email = $1", 2, email, otp ? "1" : "0") == NULL)
    {
        log_warn("req=%s msg=\"cannot release the account's sign-in"
                 " reservation\" sqlstate=%s", r->id, state[0] ? state : "-");
    }
}


/* A password reset proves the mailbox, a registration creates the
 * account (a row of an unknown address is not its owner's): the budget
 * starts over. */
static void
account_forget(req_t *r, const char *email)
{
    const char *state;

    if (dbq_try(r, &state, "DELETE FROM account_guard WHERE email = $1", 1,
                email) == NULL)
    {
        log_warn("req=%s msg=\"cannot reset the account's sign-in budget\""
                 " sqlstate=%s", r->id, state[0] ? state : "-");
    }
}


/* ---- scrypt, bounded ------------------------------------------------ */

/* One of the scrypt slots (password.c) for this request, or 503 with
 * Retry-After: 1 when every slot is busy: the other threads stay free for
 * the routes that do not hash. scrypt_done() gives it back as soon as the
 * hashing is over; a handler that returns before that gives it back when
 * the request ends. */
static void
scrypt_done(void *p)
{
    req_t *r = p;

    if (r->scrypt_slot) {
        r->scrypt_slot = 0;
        password_slot_give();
    }
}


static int
scrypt_slot(req_t *r)
{
    if (password_slot_take() != 0) {
        r->retry_after = "1";
        reply_error(r, 503, "busy",
                    "too many password checks in progress; retry in 1 second");
        return -1;
    }
    r->scrypt_slot = 1;
    req_defer(r, scrypt_done, r);
    return 0;
}


/* a new hash (freed with the request), or NULL with a 500 sent */
static char *
hash_new(req_t *r, const char *pw)
{
    char *hash = password_hash(pw, cfg.scrypt_n);

    if (hash == NULL) {
        log_error("req=%s msg=\"password_hash failed\"", r->id);
        reply_error(r, 500, "internal_error", "internal error");
        return NULL;
    }
    req_defer(r, free, hash);
    return hash;
}


/* ---- tokens ------------------------------------------------------------ */

/* Issues a token with iat = max(now, tokens_valid_after): a token made in
 * the second of a password change is still accepted by auth_require, while
 * every token made before the change is refused. Returns the token (freed
 * with the request) and its lifetime from now, or NULL with a 500 sent. */
static char *
issue(req_t *r, const char *user_id, long long valid_after, const char *tid,
    const char *role, const char *env, long long *expires_in)
{
    long long  now = (long long) time(NULL), iat, exp = 0;
    char      *tok;

    iat = valid_after > now ? valid_after : now;
    tok = token_issue(cfg.jwt_secret, user_id, tid, role, env, cfg.token_ttl,
                      iat, &exp);
    if (tok == NULL) {
        log_error("req=%s msg=\"cannot issue a token\"", r->id);
        reply_error(r, 500, "internal_error", "internal error");
        return NULL;
    }
    req_defer(r, free, tok);
    *expires_in = exp - now;
    return tok;
}


static void
reply_global(req_t *r, const char *user_id, long long valid_after)
{
    long long  expires_in;
    char      *tok;
    jw_t       w;

    tok = issue(r, user_id, valid_after, NULL, NULL, NULL, &expires_in);
    if (tok == NULL) {
        return;
    }
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "global_access_token", tok);
    jw_kstr(&w, "token_type", "Bearer");
    jw_kint(&w, "expires_in", expires_in);
    jw_obj_end(&w);
    reply_json(r, 200, &w);
}


/* columns 0..2 of res: tenant id, slug, name */
static void
reply_scoped(req_t *r, PGresult *res, const char *role, const char *env,
    long long valid_after)
{
    long long  expires_in;
    char      *tok;
    jw_t       w;

    tok = issue(r, r->auth.user_id, valid_after, PQgetvalue(res, 0, 0), role,
                env, &expires_in);
    if (tok == NULL) {
        return;
    }
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "scoped_access_token", tok);
    jw_kstr(&w, "token_type", "Bearer");
    jw_kint(&w, "expires_in", expires_in);
    jw_key(&w, "tenant");
    jw_obj(&w);
    jw_kstr(&w, "id", PQgetvalue(res, 0, 0));
    jw_kstr(&w, "slug", PQgetvalue(res, 0, 1));
    jw_kstr(&w, "name", PQgetvalue(res, 0, 2));
    jw_obj_end(&w);
    jw_kstr(&w, "role", role);
    jw_kstr(&w, "env", env);
    jw_obj_end(&w);
    reply_json(r, 200, &w);
}


/* The same answer whether or not the address has an account. */
static void
reply_sent(req_t *r, const char *what, long long expires_in)
{
    jw_t w;

    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "status", "accepted");
    jw_kstr(&w, "message", what);
    jw_kint(&w, "expires_in", expires_in);
    jw_obj_end(&w);
    reply_json(r, SENT_STATUS, &w);
}


/* After a password change or reset, inside its transaction: the new hash,
 * tokens_valid_after moved past every token issued so far (strictly up,
 * so two changes in one second still revoke the token issued between
 * them), outstanding codes and reset tokens void, a notice to the owner.
 * Returns the new tokens_valid_after, or -1 with the reply sent. */
static long long
password_set(req_t *r, const char *user_id, const char *hash,
    const char *how)
{
    char      now[24];
    PGresult *res;

    snprintf(now, sizeof(now), "%lld", (long long) time(NULL));
    res = dbq(r,
              "UPDATE users SET password_hash = $2, updated_at = now(),"
              " tokens_valid_after = greatest($3::bigint + 1,"
              "                               tokens_valid_after + 1)"
              " WHERE id = $1 RETURNING tokens_valid_after, email", 3,
              user_id, hash, now);
    if (res == NULL) {
        return -1;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 401, "invalid_token", "the user no longer exists");
        return -1;
    }
    if (dbq(r, "DELETE FROM otp_codes WHERE user_id = $1", 1, user_id) == NULL
        || dbq(r, "UPDATE password_resets SET used_at = now()"
                  " WHERE user_id = $1 AND used_at IS NULL", 1, user_id)
           == NULL
        || mail_send(r, PQgetvalue(res, 0, 1),
                     "Your TruePort password was changed",
                     arena_sprintf(&r->arena,
                         "The password of your TruePort account was %s.\n"
                         "Every session signed in before the change has"
                         " been signed out.\n\n"
                         "If this was not you, reset your password now"
                         " (forgot-password) and tell your administrator.\n",
                         how)) != 0)
    {
        return -1;
    }
    return atoll(PQgetvalue(res, 0, 0));
}


/* ---- handlers ---------------------------------------------------------- */

/* POST /global/auth/register {email, password, name?} -> 201 the user */
void
h_auth_register(req_t *r)
{
    static const char *const fields[] = { "email", "password", "name", NULL };
    const char *pw, *name, *state;
    char        email[EMAIL_MAX + 1], *hash;
    PGresult   *res;
    yajl_val    body;
    jw_t        w;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || body_email(r, body, email) != 0
        || req_field_str(r, body, "password", F_REQUIRED, 0, &pw) != 0
        || body_name(r, body, &name) != 0
        || check_policy(r, "password", pw) != 0)
    {
        return;
    }

    if (!global_config_bool(r, "signup_enabled", 1)) {
        reply_error(r, 403, "signup_disabled",
                    "registration is disabled on this platform");
        return;
    }

    /* a cheap answer for a taken address, before the expensive hash */
    res = dbq(r, "SELECT 1 FROM users WHERE email = $1", 1, email);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) > 0) {
        reply_error(r, 409, "email_taken",
                    "an account with this email already exists");
        return;
    }

    if (scrypt_slot(r) != 0 || (hash = hash_new(r, pw)) == NULL) {
        return;
    }
    scrypt_done(r);

    res = dbq_try(r, &state,
                  "INSERT INTO users (email, name, password_hash)"
                  " VALUES ($1, $2, $3)"
                  " RETURNING id, email, name, " ORG_TS("created_at"), 3,
                  email, name, hash);
    if (res == NULL) {
        if (strcmp(state, "23505") == 0) {
            reply_error(r, 409, "email_taken",
                        "an account with this email already exists");
        } else {
            org_db_fail(r, state);
        }
        return;
    }
    account_forget(r, email);

    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "id", PQgetvalue(res, 0, 0));
    jw_kstr(&w, "email", PQgetvalue(res, 0, 1));
    jw_kstr(&w, "name", PQgetvalue(res, 0, 2));
    jw_kstr(&w, "created_at", PQgetvalue(res, 0, 3));
    jw_obj_end(&w);
    reply_json(r, 201, &w);
}


/* POST /global/auth/login {email, password} -> a global token. An unknown
 * address and a wrong password get the same 401, after the same scrypt;
 * both spend the same budgets. */
void
h_auth_login(req_t *r)
{
    static const char *const fields[] = { "email", "password", NULL };
    const char *pw;
    char        email[EMAIL_MAX + 1];
    PGresult   *res;
    yajl_val    body;
    int         known, ok;

    /* the slot first: a refusal for want of one must not count */
    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || body_email(r, body, email) != 0
        || req_field_str(r, body, "password", F_REQUIRED, PASSWORD_MAX, &pw)
           != 0
        || scrypt_slot(r) != 0
        || login_guard(r, email) != 0
        || account_guard(r, email, 0) != 0)
    {
        return;
    }

    res = dbq(r, "SELECT id, password_hash, tokens_valid_after FROM users"
                 " WHERE email = $1", 1, email);
    if (res == NULL) {
        return;
    }
    known = PQntuples(res) == 1;
    ok = password_verify(pw, known ? PQgetvalue(res, 0, 1)
                                   : password_dummy());
    scrypt_done(r);
    if (!known || !ok) {
        reply_error(r, 401, "invalid_credentials",
                    "the email or password is incorrect");
        return;
    }

    account_release(r, email, 0);
    login_forget(r, email, 0);
    reply_global(r, PQgetvalue(res, 0, 0), atoll(PQgetvalue(res, 0, 2)));
}


/* 1 when the address already got MAIL_BURST messages with this subject
 * in the window, 0 when not, -1 with the reply sent. */
static int
mail_throttled(req_t *r, const char *email, const char *subject)
{
    PGresult *res;

    res = dbq(r, "SELECT count(*) >= " MAIL_BURST " FROM outbox"
                 " WHERE to_addr = $1 AND subject = $2"
                 " AND created_at > now() - interval '" MAIL_BURST_WINDOW "'",
              2, email, subject);
    if (res == NULL) {
        return -1;
    }
    if (PQgetvalue(res, 0, 0)[0] == 't') {
        log_info("req=%s msg=\"mail throttled\" subject=\"%s\"", r->id,
                 subject);
        return 1;
    }
    return 0;
}


/* A fresh code for a user (replacing any earlier one), mailed in the same
 * transaction. 0, or -1 with the reply sent. */
static int
otp_issue(req_t *r, const char *uid, const char *email)
{
    char code[7], hash[65];
    int  rc;

    rc = mail_throttled(r, email, SUBJECT_OTP);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }
    if (otp_new(code) != 0) {
        reply_error(r, 500, "internal_error", "internal error");
        return -1;
    }
    otp_hash(uid, code, hash);

    if (db_begin(r) != 0
        || dbq(r, "INSERT INTO otp_codes (user_id, code_hash, expires_at)"
                  " VALUES ($1, $2, now() + interval '" OTP_TTL "')"
                  " ON CONFLICT (user_id) DO UPDATE SET"
                  " code_hash = excluded.code_hash, attempts = 0,"
                  " expires_at = excluded.expires_at, used_at = NULL,"
                  " created_at = now()", 2, uid, hash) == NULL
        || mail_send(r, email, SUBJECT_OTP,
                     arena_sprintf(&r->arena,
                         "Your sign-in code is %s\n\n"
                         "It works once, within 10 minutes. A newer code"
                         " replaces it.\n"
                         "If you did not ask for it, ignore this message.\n",
                         code)) != 0
        || db_commit(r) != 0)
    {
        return -1;
    }
    return 0;
}


/* The answer of otp/request and forgot-password: 202 whoever asks; a known
 * address gets the code or token by mail (issue() sends it). */
static void
mail_if_known(req_t *r, int (*issue)(req_t *r, const char *uid,
    const char *email), const char *said, long ttl)
{
    static const char *const fields[] = { "email", NULL };
    char        email[EMAIL_MAX + 1];
    PGresult   *res;
    yajl_val    body;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || body_email(r, body, email) != 0)
    {
        return;
    }

    res = dbq(r, "SELECT id FROM users WHERE email = $1", 1, email);
    if (res == NULL
        || (PQntuples(res) == 1 && issue(r, PQgetvalue(res, 0, 0), email) != 0))
    {
        return;
    }

    reply_sent(r, said, ttl);
}


/* POST /global/auth/otp/request {email} -> 202 */
void
h_auth_otp_request(req_t *r)
{
    mail_if_known(r, otp_issue, "if an account exists for this address, a"
                  " sign-in code has been sent to it", OTP_TTL_S);
}


/* POST /global/auth/otp/verify {email, code} -> a global token. A wrong
 * code uses one of the code's 5 tries and one of the account's 10 per 15
 * minutes (whatever the code), and counts as a failed sign-in. */
void
h_auth_otp_verify(req_t *r)
{
    static const char *const fields[] = { "email", "code", NULL };
    const char *code, *uid;
    char        email[EMAIL_MAX + 1], hash[65];
    PGresult   *user, *otp;
    yajl_val    body;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || body_email(r, body, email) != 0
        || req_field_str(r, body, "code", F_REQUIRED, 16, &code) != 0)
    {
        return;
    }
    if (!is_otp_code(code)) {
        reply_error(r, 422, "invalid_field", "\"code\" must be 6 digits");
        return;
    }
    if (login_guard(r, email) != 0 || account_guard(r, email, 1) != 0) {
        return;
    }

    user = dbq(r, "SELECT id, tokens_valid_after FROM users WHERE email = $1",
               1, email);
    if (user == NULL) {
        return;
    }
    if (PQntuples(user) == 0) {
        reply_error(r, 401, "invalid_code",
                    "the code is wrong or was not requested");
        return;
    }
    uid = PQgetvalue(user, 0, 0);

    if (db_begin(r) != 0) {
        return;
    }
    otp = dbq(r, "SELECT code_hash, used_at IS NOT NULL, expires_at <= now(),"
                 " attempts >= " OTP_MAX_TRIES
                 " FROM otp_codes WHERE user_id = $1 FOR UPDATE", 1, uid);
    if (otp == NULL) {
        return;
    }
    if (PQntuples(otp) == 0) {
        reply_error(r, 401, "invalid_code",
                    "the code is wrong or was not requested");
        return;
    }
    if (PQgetvalue(otp, 0, 1)[0] == 't') {
        reply_error(r, 401, "code_used",
                    "this code was already used; request a new one");
        return;
    }
    if (PQgetvalue(otp, 0, 2)[0] == 't') {
        reply_error(r, 401, "code_expired",
                    "this code has expired; request a new one");
        return;
    }
    if (PQgetvalue(otp, 0, 3)[0] == 't') {
        reply_error(r, 401, "code_exhausted",
                    "too many wrong codes; request a new one");
        return;
    }

    otp_hash(uid, code, hash);
    if (CRYPTO_memcmp(hash, PQgetvalue(otp, 0, 0), 64) != 0) {
        if (dbq(r, "UPDATE otp_codes SET attempts = attempts + 1"
                   " WHERE user_id = $1", 1, uid) == NULL
            || db_commit(r) != 0)
        {
            return;
        }
        reply_error(r, 401, "invalid_code",
                    "the code is wrong or was not requested");
        return;
    }

    if (dbq(r, "UPDATE otp_codes SET used_at = now() WHERE user_id = $1", 1,
            uid) == NULL
        || db_commit(r) != 0)
    {
        return;
    }

    account_release(r, email, 1);
    login_forget(r, email, 0);
    reply_global(r, uid, atoll(PQgetvalue(user, 0, 1)));
}


/* A reset token for a user, mailed in the same transaction; only its
 * SHA-256 is kept. Earlier tokens stay valid until one is used (any of
 * the mails works); spent and expired ones are dropped here. 0, or -1
 * with the reply sent. */
static int
reset_issue(req_t *r, const char *uid, const char *email)
{
    unsigned char rnd[RESET_TOKEN_BYTES];
    char          token[64], hash[65];
    int           rc;

    rc = mail_throttled(r, email, SUBJECT_RESET);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        reply_error(r, 500, "internal_error", "internal error");
        return -1;
    }
    b64url(rnd, sizeof(rnd), token);
    sha256_hex(token, strlen(token), hash);

    if (db_begin(r) != 0
        || dbq(r, "DELETE FROM password_resets WHERE user_id = $1"
                  " AND (used_at IS NOT NULL OR expires_at <= now())", 1,
               uid) == NULL
        || dbq(r, "INSERT INTO password_resets (user_id, token_hash,"
                  " expires_at)"
                  " VALUES ($1, $2, now() + interval '" RESET_TTL "')", 2,
               uid, hash) == NULL
        || mail_send(r, email, SUBJECT_RESET,
                     arena_sprintf(&r->arena,
                         "Your password reset token is %s\n\n"
                         "It works once, within 1 hour:\n\n"
                         "    POST /platform/api/global/auth/reset-password\n"
                         "    {\"token\": \"%s\", \"password\":"
                         " \"<new password>\"}\n\n"
                         "If you did not ask for a reset, ignore this"
                         " message: your password is unchanged.\n",
                         token, token)) != 0
        || db_commit(r) != 0)
    {
        return -1;
    }
    return 0;
}


/* POST /global/auth/forgot-password {email} -> 202 */
void
h_auth_forgot_password(req_t *r)
{
    mail_if_known(r, reset_issue, "if an account exists for this address, a"
                  " password reset token has been sent to it", RESET_TTL_S);
}


/* POST /global/auth/reset-password {token, password} -> a global token.
 * Every earlier token of the user dies (tokens_valid_after). */
void
h_auth_reset_password(req_t *r)
{
    static const char *const fields[] = { "token", "password", NULL };
    const char *token, *pw, *uid;
    char        thash[65], *hash;
    long long   valid_after;
    PGresult   *res, *lock;
    yajl_val    body;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || req_field_str(r, body, "token", F_REQUIRED, 256, &token) != 0
        || req_field_str(r, body, "password", F_REQUIRED, 0, &pw) != 0
        || check_policy(r, "password", pw) != 0)
    {
        return;
    }
    sha256_hex(token, strlen(token), thash);

    /* look before hashing, so a made-up token costs no scrypt */
    res = dbq(r, "SELECT pr.id, pr.user_id, pr.used_at IS NOT NULL,"
                 " pr.expires_at <= now(), u.email"
                 " FROM password_resets pr JOIN users u ON u.id = pr.user_id"
                 " WHERE pr.token_hash = $1", 1, thash);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 401, "invalid_reset_token",
                    "the reset token is not valid");
        return;
    }
    if (PQgetvalue(res, 0, 2)[0] == 't') {
        reply_error(r, 401, "reset_token_used",
                    "this reset token was already used (or a newer one"
                    " was); request a new one");
        return;
    }
    if (PQgetvalue(res, 0, 3)[0] == 't') {
        reply_error(r, 401, "reset_token_expired",
                    "this reset token has expired; request a new one");
        return;
    }
    uid = PQgetvalue(res, 0, 1);

    if (scrypt_slot(r) != 0 || (hash = hash_new(r, pw)) == NULL) {
        return;
    }
    scrypt_done(r);

    /* again under the row lock: two resets with one token, one wins */
    if (db_begin(r) != 0) {
        return;
    }
    lock = dbq(r, "SELECT 1 FROM password_resets WHERE id = $1"
                  " AND used_at IS NULL AND expires_at > now() FOR UPDATE",
               1, PQgetvalue(res, 0, 0));
    if (lock == NULL) {
        return;
    }
    if (PQntuples(lock) == 0) {
        reply_error(r, 401, "reset_token_used",
                    "this reset token was already used; request a new one");
        return;
    }

    valid_after = password_set(r, uid, hash, "reset with an emailed token");
    if (valid_after < 0 || db_commit(r) != 0) {
        return;
    }

    /* the mailbox is proven: lift the sign-in lock on every address, and
     * the account's */
    login_forget(r, PQgetvalue(res, 0, 4), 1);
    account_forget(r, PQgetvalue(res, 0, 4));
    reply_global(r, uid, valid_after);
}


/* PUT /global/auth/password {old_password, new_password} -> a new global
 * token (the caller's own token dies with the change). A wrong current
 * password is 403 invalid_password, not 401: the token is fine, and a
 * client must not take it for a signed-out session. It counts as a failed
 * sign-in, so a stolen token cannot be used to guess the password. */
void
h_auth_password_change(req_t *r)
{
    static const char *const fields[] = { "old_password", "new_password",
                                          NULL };
    const char *old, *new;
    char       *hash;
    long long   valid_after;
    PGresult   *res;
    yajl_val    body;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || req_field_str(r, body, "old_password", F_REQUIRED, PASSWORD_MAX,
                         &old) != 0
        || req_field_str(r, body, "new_password", F_REQUIRED, 0, &new) != 0
        || check_policy(r, "new_password", new) != 0)
    {
        return;
    }
    if (strcmp(old, new) == 0) {
        reply_error(r, 422, "password_unchanged",
                    "the new password must differ from the current one");
        return;
    }

    if (scrypt_slot(r) != 0) {
        return;
    }
    res = dbq(r, "SELECT email, password_hash FROM users WHERE id = $1", 1,
              r->auth.user_id);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 401, "invalid_token", "the user no longer exists");
        return;
    }
    if (login_guard(r, PQgetvalue(res, 0, 0)) != 0
        || account_guard(r, PQgetvalue(res, 0, 0), 0) != 0)
    {
        return;
    }
    if (!password_verify(old, PQgetvalue(res, 0, 1))) {
        reply_error(r, 403, "invalid_password",
                    "the current password is incorrect");
        return;
    }
    account_release(r, PQgetvalue(res, 0, 0), 0);
    login_forget(r, PQgetvalue(res, 0, 0), 0);

    if ((hash = hash_new(r, new)) == NULL) {
        return;
    }
    scrypt_done(r);

    if (db_begin(r) != 0) {
        return;
    }
    valid_after = password_set(r, r->auth.user_id, hash, "changed");
    if (valid_after < 0 || db_commit(r) != 0) {
        return;
    }
    reply_global(r, r->auth.user_id, valid_after);
}


/* POST /global/auth/select-tenant {tenant_id} or {slug} -> a scoped token
 * for the caller's current role there. Not a member and no such tenant
 * are the same 403, so tenant ids and slugs cannot be probed. */
void
h_auth_select_tenant(req_t *r)
{
    static const char *const fields[] = { "tenant_id", "slug", NULL };
    const char *tid, *slug;
    PGresult   *res;
    yajl_val    body;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || req_field_str(r, body, "tenant_id", F_NULLABLE, 64, &tid) != 0
        || req_field_str(r, body, "slug", F_NULLABLE, 64, &slug) != 0)
    {
        return;
    }
    if ((tid == NULL) == (slug == NULL)) {
        reply_error(r, 422, "invalid_field",
                    "give either \"tenant_id\" or \"slug\"");
        return;
    }
    if (tid != NULL && !is_uuid(tid)) {
        reply_error(r, 422, "invalid_field", "\"tenant_id\" must be a uuid");
        return;
    }

    res = dbq(r,
              "SELECT t.id, t.slug, t.name, t.status, t.status_reason, m.role,"
              " CASE WHEN 'production' = ANY (t.environments)"
              "  THEN 'production'"
              "  ELSE coalesce(t.environments[1], 'production') END,"
              " u.tokens_valid_after"
              " FROM users u"
              " JOIN memberships m ON m.user_id = u.id"
              " JOIN tenants t ON t.id = m.tenant_id"
              " WHERE u.id = $1 AND (t.id = $2::uuid OR t.slug = $3)", 3,
              r->auth.user_id, tid, slug);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 403, "not_a_member",
                    "you are not a member of this tenant (or it does not"
                    " exist)");
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 3), "active") != 0) {
        reply_error(r, 403, "tenant_suspended",
                    "the tenant \"%s\" is suspended%s%s; contact the platform"
                    " administrator", PQgetvalue(res, 0, 1),
                    PQgetisnull(res, 0, 4) ? "" : ": ",
                    PQgetisnull(res, 0, 4) ? ""
                    : org_safe(r, PQgetvalue(res, 0, 4), 200));
        return;
    }

    reply_scoped(r, res, PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6),
                 atoll(PQgetvalue(res, 0, 7)));
}


/* POST /service/auth/switch-environment {env} -> a scoped token for the
 * same tenant with another of its environments; 422 for any other env */
void
h_auth_switch_environment(req_t *r)
{
    static const char *const fields[] = { "env", NULL };
    const char *env;
    PGresult   *res;
    yajl_val    body;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || req_field_str(r, body, "env", F_REQUIRED, 31, &env) != 0)
    {
        return;
    }

    res = dbq(r,
              "SELECT t.id, t.slug, t.name, $3 = ANY (t.environments),"
              " array_to_string(t.environments, ', '), u.tokens_valid_after"
              " FROM tenants t, users u WHERE t.id = $1 AND u.id = $2", 3,
              r->auth.tenant_id, r->auth.user_id, env);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 403, "not_a_member",
                    "you are not a member of this tenant");
        return;
    }
    if (PQgetvalue(res, 0, 3)[0] != 't') {
        reply_error(r, 422, "invalid_environment",
                    "\"env\" must be one of the tenant's environments: %s",
                    org_safe(r, PQgetvalue(res, 0, 4), 300));
        return;
    }

    reply_scoped(r, res, role_name(r->auth.role), env,
                 atoll(PQgetvalue(res, 0, 5)));
}
