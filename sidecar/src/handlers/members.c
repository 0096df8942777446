/* handlers/members.c - the tenant's team: list, change a role, remove;
 * a tenant always keeps at least one owner */
#include "handlers.h"
#include "../audit.h"
#include "../auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void
jw_member(jw_t *w, PGresult *res, int i)
{
    jw_obj(w);
    jw_kstr(w, "user_id", PQgetvalue(res, i, 0));
    jw_kstr(w, "email", PQgetvalue(res, i, 1));
    jw_kstr(w, "name", PQgetvalue(res, i, 2));
    jw_kstr(w, "role", PQgetvalue(res, i, 3));
    jw_key(w, "joined_at");
    jw_pg_ts(w, PQgetvalue(res, i, 4));
    jw_obj_end(w);
}

#define MEMBER_COLS                                                         \
    " u.id, u.email, u.name, m.role, " ORG_UTC("m.created_at")


/* GET /service/members */
void
h_members_list(req_t *r)
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

#define MEMBERS_PAGE                                                        \
    "FROM memberships m WHERE m.tenant_id = $1"                             \
    " ORDER BY m.created_at, m.user_id"

    /* one round trip: the page of memberships first (in the order of
     * their index), then the users of just those rows; the total rides
     * along (PAGE_TOTAL_IF_MORE) */
    res = dbq(r,
              "SELECT" MEMBER_COLS ","
              PAGE_TOTAL_IF_MORE("$2", "$3", MEMBERS_PAGE,
                                 "SELECT count(*) FROM memberships"
                                 " WHERE tenant_id = $1")
              " FROM (SELECT * " MEMBERS_PAGE " LIMIT $2 OFFSET $3) m"
              " JOIN users u ON u.id = m.user_id"
              " ORDER BY m.created_at, m.user_id", 3,
              r->auth.tenant_id, slimit, soffset);
#undef MEMBERS_PAGE
    if (res == NULL) {
        return;
    }
    if (page_total(r, res, offset, &total,
                   "SELECT count(*) FROM memberships WHERE tenant_id = $1",
                   1, r->auth.tenant_id) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_member(&w, res, i);
    }
    jw_page_end(&w, total, limit, offset);
    reply_json(r, 200, &w);
}


/* Inside a transaction: locks the tenant row (so two requests cannot each
 * remove one of the last two owners), then reads the member. Returns the
 * result (one row, MEMBER_COLS) or NULL with the reply sent. */
static PGresult *
lock_member(req_t *r, const char *user_id)
{
    PGresult *res;

    if (dbq(r, "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", 1,
            r->auth.tenant_id) == NULL)
    {
        return NULL;
    }
    res = dbq(r,
              "SELECT" MEMBER_COLS
              " FROM memberships m JOIN users u ON u.id = m.user_id"
              " WHERE m.tenant_id = $1 AND m.user_id = $2", 2,
              r->auth.tenant_id, user_id);
    if (res != NULL && PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such member");
        return NULL;
    }
    return res;
}


/* 0 when the tenant has another owner besides the one leaving */
static int
keeps_an_owner(req_t *r, const char *action)
{
    PGresult *res;

    res = dbq(r, "SELECT count(*) FROM memberships"
                 " WHERE tenant_id = $1 AND role = 'owner'", 1,
              r->auth.tenant_id);
    if (res == NULL) {
        return -1;
    }
    if (atoll(PQgetvalue(res, 0, 0)) <= 1) {
        reply_error(r, 409, "last_owner",
                    "cannot %s the last owner: make another member owner"
                    " first", action);
        return -1;
    }
    return 0;
}


/* DELETE /service/members/{user_id} */
void
h_members_remove(req_t *r)
{
    const char *uid;
    PGresult   *m;
    role_t      role;

    if (org_path_id(r, "user_id", &uid) != 0 || db_begin(r) != 0) {
        return;
    }
    m = lock_member(r, uid);
    if (m == NULL) {
        return;
    }

    role = role_parse(PQgetvalue(m, 0, 3));
    if (role > r->auth.role) {
        reply_error(r, 403, "insufficient_role",
                    "only an owner can remove an owner");
        return;
    }
    if (role == ROLE_OWNER && keeps_an_owner(r, "remove") != 0) {
        return;
    }

    if (dbq(r, "DELETE FROM memberships WHERE tenant_id = $1"
               " AND user_id = $2", 2, r->auth.tenant_id, uid) == NULL
        || audit_record(r, r->auth.tenant_id, "member.removed", uid,
                        arena_sprintf(&r->arena, "{\"role\":\"%s\"}",
                                      role_name(role))) != 0
        || db_commit(r) != 0)
    {
        return;
    }
    reply_raw(r, 204, "");
}


/* PATCH /service/members/{user_id} {role}: nobody grants more than they
 * hold, only owners touch owners, the last owner stays */
void
h_members_update(req_t *r)
{
    static const char *const fields[] = { "role", NULL };
    const char *uid, *srole;
    role_t      from, to;
    PGresult   *m;
    yajl_val    body;
    jw_t        w;

    if (org_path_id(r, "user_id", &uid) != 0
        || req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0
        || req_field_str(r, body, "role", F_REQUIRED, 16, &srole) != 0)
    {
        return;
    }
    to = role_parse(srole);
    if (to == ROLE_NONE) {
        reply_error(r, 422, "invalid_field",
                    "\"role\" must be viewer, member, admin or owner");
        return;
    }
    if (to > r->auth.role) {
        reply_error(r, 403, "insufficient_role",
                    "you cannot grant a role above your own (%s)",
                    role_name(r->auth.role));
        return;
    }

    if (db_begin(r) != 0) {
        return;
    }
    m = lock_member(r, uid);
    if (m == NULL) {
        return;
    }
    from = role_parse(PQgetvalue(m, 0, 3));
    if (from > r->auth.role) {
        reply_error(r, 403, "insufficient_role",
                    "only an owner can change an owner's role");
        return;
    }

    if (from != to) {
        if (from == ROLE_OWNER && keeps_an_owner(r, "demote") != 0) {
            return;
        }
        m = dbq(r,
                "WITH c AS (UPDATE memberships SET role = $3"
                " WHERE tenant_id = $1 AND user_id = $2 RETURNING *)"
                " SELECT" MEMBER_COLS " FROM c m JOIN users u"
                " ON u.id = m.user_id", 3,
                r->auth.tenant_id, uid, role_name(to));
        if (m == NULL
            || audit_record(r, r->auth.tenant_id, "member.role_changed", uid,
                            arena_sprintf(&r->arena,
                                          "{\"from\":\"%s\",\"to\":\"%s\"}",
                                          role_name(from), role_name(to)))
               != 0)
        {
            return;
        }
    }
    if (db_commit(r) != 0) {
        return;
    }

    jw_init(&w);
    jw_member(&w, m, 0);
    reply_json(r, 200, &w);
}
