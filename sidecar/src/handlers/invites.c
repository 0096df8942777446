/* handlers/invites.c - invitations: an admin invites an email address with a
 * role, the token goes out by mail (only its SHA-256 is kept), the user
 * with that address accepts it with a global token */
#include "handlers.h"
#include "../audit.h"
#include "../auth.h"
#include "../mail.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INVITE_TTL      "7 days"
#define INVITE_PREFIX   "inv_"
#define INVITE_TOKEN_LEN (4 + 64)


static void
hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t            i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}


/* "inv_" + 64 hex digits of randomness */
static int
new_token(char out[INVITE_TOKEN_LEN + 1])
{
    unsigned char rnd[32];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return -1;
    }
    memcpy(out, INVITE_PREFIX, 4);
    hex(rnd, sizeof(rnd), out + 4);
    return 0;
}


static void
token_hash(const char *token, char out[65])
{
    unsigned char md[32];
    unsigned int  n = 0;

    EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL);
    hex(md, 32, out);
}


#define INVITE_COLS                                                         \
    " i.id, i.email, i.role, i.invited_by, ib.email, "                      \
    ORG_TS("i.created_at") ", " ORG_TS("i.expires_at")

static void
jw_invite(jw_t *w, PGresult *res, int i)
{
    jw_obj(w);
    jw_kstr(w, "id", PQgetvalue(res, i, 0));
    jw_kstr(w, "email", PQgetvalue(res, i, 1));
    jw_kstr(w, "role", PQgetvalue(res, i, 2));
    org_jw_col(w, "invited_by", res, i, 3, ORG_STR);
    org_jw_col(w, "invited_by_email", res, i, 4, ORG_STR);
    jw_kstr(w, "status", "pending");
    jw_kstr(w, "created_at", PQgetvalue(res, i, 5));
    jw_kstr(w, "expires_at", PQgetvalue(res, i, 6));
    jw_obj_end(w);
}


/* POST /service/invites {email, role?}: role defaults to member and may
 * not exceed the inviter's; inviting the same address again replaces the
 * pending invite (a fresh token, a fresh week). */
void
h_invites_create(req_t *r)
{
    static const char *const fields[] = { "email", "role", NULL };
    const char *semail, *srole = "member", *subject, *text;
    char        email[321], token[INVITE_TOKEN_LEN + 1], hash[65];
    role_t      role;
    PGresult   *t, *res;
    yajl_val    body;
    jw_t        w;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || req_field_str(r, body, "email", F_REQUIRED, 320, &semail) != 0
        || req_field_str(r, body, "role", 0, 16, &srole) != 0
        || org_email(r, semail, email, sizeof(email)) != 0)
    {
        return;
    }
    if (srole == NULL) {
        srole = "member";
    }
    role = role_parse(srole);
    if (role == ROLE_NONE) {
        reply_error(r, 422, "invalid_field",
                    "\"role\" must be viewer, member, admin or owner");
        return;
    }
    if (role > r->auth.role) {
        reply_error(r, 403, "insufficient_role",
                    "you cannot invite with a role above your own (%s)",
                    role_name(r->auth.role));
        return;
    }

    if (new_token(token) != 0) {
        reply_error(r, 500, "internal_error", "internal error");
        return;
    }
    token_hash(token, hash);

    if (db_begin(r) != 0) {
        return;
    }
    t = dbq(r,
            "SELECT t.name, t.slug, EXISTS (SELECT 1 FROM memberships m"
            "  JOIN users u ON u.id = m.user_id"
            "  WHERE m.tenant_id = t.id AND u.email = $2)"
            " FROM tenants t WHERE t.id = $1 FOR UPDATE", 2,
            r->auth.tenant_id, email);
    if (t == NULL) {
        return;
    }
    if (PQgetvalue(t, 0, 2)[0] == 't') {
        reply_error(r, 409, "already_member",
                    "%s is already a member of this tenant", email);
        return;
    }

    if (dbq(r, "DELETE FROM invites WHERE tenant_id = $1 AND email = $2"
               " AND accepted_at IS NULL", 2, r->auth.tenant_id, email)
        == NULL)
    {
        return;
    }
    res = dbq(r,
              "WITH i AS (INSERT INTO invites (tenant_id, email, role,"
              " token_hash, invited_by, expires_at)"
              " VALUES ($1, $2, $3, $4, $5, now() + interval '" INVITE_TTL "')"
              " RETURNING *)"
              " SELECT" INVITE_COLS
              " FROM i LEFT JOIN users ib ON ib.id = i.invited_by", 5,
              r->auth.tenant_id, email, role_name(role), hash,
              r->auth.user_id);
    if (res == NULL) {
        return;
    }

    subject = arena_sprintf(&r->arena, "You are invited to %s on TruePort",
                            PQgetvalue(t, 0, 0));
    text = arena_sprintf(&r->arena,
        "%s invited you to join the organisation \"%s\" (%s) on TruePort"
        " as %s.\n\n"
        "Sign in (or register) with this address, then accept with\n\n"
        "    POST /platform/api/global/invites/accept\n"
        "    {\"token\": \"%s\"}\n\n"
        "The invitation expires on %s.\n",
        PQgetisnull(res, 0, 4) ? "Someone" : PQgetvalue(res, 0, 4),
        PQgetvalue(t, 0, 0), PQgetvalue(t, 0, 1), role_name(role), token,
        PQgetvalue(res, 0, 6));

    if (mail_send(r, email, subject, text) != 0
        || audit_record(r, r->auth.tenant_id, "invite.created",
                        PQgetvalue(res, 0, 0),
                        arena_sprintf(&r->arena,
                                      "{\"role\":\"%s\",\"email\":\"%s\"}",
                                      role_name(role), email)) != 0
        || db_commit(r) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_invite(&w, res, 0);
    reply_json(r, 201, &w);
}


/* GET /service/invites: pending (not accepted, not expired) */
void
h_invites_list(req_t *r)
{
    char      slimit[24], soffset[24];
    long      limit, offset;
    long long total;
    PGresult *res;
    jw_t      w;
    int       i;

    if (req_page(r, &limit, &offset) != 0) {
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit);
    snprintf(soffset, sizeof(soffset), "%ld", offset);

#define PENDING " i.tenant_id = $1 AND i.accepted_at IS NULL" \
                " AND i.expires_at > now()"

    res = dbq(r,
              "SELECT" INVITE_COLS ","
              " (SELECT count(*) FROM invites i WHERE" PENDING ")"
              " FROM invites i LEFT JOIN users ib ON ib.id = i.invited_by"
              " WHERE" PENDING
              " ORDER BY i.created_at DESC, i.id LIMIT $2 OFFSET $3", 3,
              r->auth.tenant_id, slimit, soffset);
    if (res == NULL) {
        return;
    }
    if (page_total(r, res, offset, &total,
                   "SELECT count(*) FROM invites i WHERE" PENDING,
                   1, r->auth.tenant_id) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_invite(&w, res, i);
    }
    jw_page_end(&w, total, limit, offset);
    reply_json(r, 200, &w);
#undef PENDING
}


/* DELETE /service/invites/{id}: revoke a pending invite */
void
h_invites_revoke(req_t *r)
{
    const char *id;
    PGresult   *res;

    if (org_path_id(r, "id", &id) != 0 || db_begin(r) != 0) {
        return;
    }
    res = dbq(r,
              "SELECT role, email FROM invites WHERE id = $1"
              " AND tenant_id = $2 AND accepted_at IS NULL FOR UPDATE", 2,
              id, r->auth.tenant_id);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such pending invite");
        return;
    }
    if (role_parse(PQgetvalue(res, 0, 0)) > r->auth.role) {
        reply_error(r, 403, "insufficient_role",
                    "only an owner can revoke an owner invite");
        return;
    }
    if (dbq(r, "DELETE FROM invites WHERE id = $1", 1, id) == NULL
        || audit_record(r, r->auth.tenant_id, "invite.revoked", id,
                        arena_sprintf(&r->arena,
                                      "{\"role\":\"%s\",\"email\":\"%s\"}",
                                      PQgetvalue(res, 0, 0),
                                      PQgetvalue(res, 0, 1))) != 0
        || db_commit(r) != 0)
    {
        return;
    }
    reply_raw(r, 204, "");
}


/* POST /global/invites/accept {token}: 404 unknown token, 403 another
 * address, 410 used or expired, 409 already a member */
void
h_invites_accept(req_t *r)
{
    static const char *const fields[] = { "token", NULL };
    const char *token;
    char        hash[65];
    PGresult   *res;
    yajl_val    body;
    jw_t        w;

    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || req_field_str(r, body, "token", F_REQUIRED, 256, &token) != 0)
    {
        return;
    }
    token_hash(token, hash);

    if (db_begin(r) != 0) {
        return;
    }
    res = dbq(r,
              "SELECT i.id, i.tenant_id, i.role, i.accepted_at IS NOT NULL,"
              " i.expires_at <= now(), i.email = u.email, t.status, t.slug,"
              " t.name, EXISTS (SELECT 1 FROM memberships m"
              "  WHERE m.tenant_id = i.tenant_id AND m.user_id = u.id)"
              " FROM invites i JOIN tenants t ON t.id = i.tenant_id"
              " JOIN users u ON u.id = $2"
              " WHERE i.token_hash = $1 FOR UPDATE OF i", 2,
              hash, r->auth.user_id);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "invite_not_found", "no such invite");
        return;
    }
    if (PQgetvalue(res, 0, 5)[0] != 't') {
        reply_error(r, 403, "invite_email_mismatch",
                    "this invite is for another email address");
        return;
    }
    if (PQgetvalue(res, 0, 3)[0] == 't') {
        reply_error(r, 410, "invite_used", "this invite was already accepted");
        return;
    }
    if (PQgetvalue(res, 0, 4)[0] == 't') {
        reply_error(r, 410, "invite_expired", "this invite has expired");
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 6), "active") != 0) {
        reply_error(r, 403, "tenant_suspended", "the tenant is suspended");
        return;
    }
    if (PQgetvalue(res, 0, 9)[0] == 't') {
        reply_error(r, 409, "already_member",
                    "you are already a member of this tenant");
        return;
    }

    if (dbq(r, "INSERT INTO memberships (tenant_id, user_id, role)"
               " VALUES ($1, $2, $3)", 3, PQgetvalue(res, 0, 1),
            r->auth.user_id, PQgetvalue(res, 0, 2)) == NULL
        || dbq(r, "UPDATE invites SET accepted_at = now(), accepted_by = $2"
                  " WHERE id = $1", 2, PQgetvalue(res, 0, 0),
               r->auth.user_id) == NULL
        || audit_record(r, PQgetvalue(res, 0, 1), "invite.accepted",
                        PQgetvalue(res, 0, 0),
                        arena_sprintf(&r->arena, "{\"role\":\"%s\"}",
                                      PQgetvalue(res, 0, 2))) != 0
        || db_commit(r) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "tenant");
    jw_obj(&w);
    jw_kstr(&w, "id", PQgetvalue(res, 0, 1));
    jw_kstr(&w, "slug", PQgetvalue(res, 0, 7));
    jw_kstr(&w, "name", PQgetvalue(res, 0, 8));
    jw_obj_end(&w);
    jw_kstr(&w, "role", PQgetvalue(res, 0, 2));
    jw_obj_end(&w);
    reply_json(r, 200, &w);
}
