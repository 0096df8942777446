/* audit.c - the audit trail: one row per change that matters to a tenant's
 * security (members, invites, plans, configs, status), written in the
 * change's own transaction */
#include "audit.h"
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC'," \
                " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


int
audit_record(req_t *r, const char *tenant_id, const char *action,
    const char *target, const char *detail)
{
    PGresult *res;

    res = dbq(r,
              "INSERT INTO audit_log (tenant_id, actor_id, action, target,"
              " detail, client_ip, request_id)"
              " VALUES ($1, $2, $3, $4, coalesce($5::jsonb, '{}'), $6, $7)",
              7, tenant_id, r->auth.ok ? r->auth.user_id : NULL, action,
              target, detail, r->client_ip[0] ? r->client_ip : NULL, r->id);
    return res == NULL ? -1 : 0;
}


/* action filters look like "member." or "config.changed" */
static int
valid_action(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz"
                                          "0123456789._") == n;
}


int
audit_list(req_t *r, const char *tenant_id, jw_t *w)
{
    const char *action;
    char        slimit[24], soffset[24];
    long        limit, offset;
    long long   total;
    PGresult   *res;
    int         i;

    if (req_page(r, &limit, &offset) != 0) {
        return -1;
    }
    action = req_query(r, "action");
    if (action != NULL && !valid_action(action)) {
        reply_error(r, 400, "invalid_filter",
                    "action must be 1 to 64 of a-z, 0-9, '.' and '_'");
        return -1;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit);
    snprintf(soffset, sizeof(soffset), "%ld", offset);

#define AUDIT_WHERE                                                         \
    " WHERE ($1::uuid IS NULL OR a.tenant_id = $1)"                          \
    " AND ($2::text IS NULL OR starts_with(a.action, $2))"

    res = dbq(r,
              "SELECT a.id, a.tenant_id, a.actor_id, u.email, a.action,"
              " a.target, a.detail, a.client_ip, " TS("a.created_at") ","
              " (SELECT count(*) FROM audit_log a" AUDIT_WHERE ")"
              " FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id"
              AUDIT_WHERE
              " ORDER BY a.id DESC LIMIT $3 OFFSET $4", 4,
              tenant_id, action, slimit, soffset);
    if (res == NULL) {
        return -1;
    }
    if (page_total(r, res, offset, &total,
                   "SELECT count(*) FROM audit_log a" AUDIT_WHERE,
                   2, tenant_id, action) != 0)
    {
        return -1;
    }

    jw_page_begin(w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_obj(w);
        jw_kraw(w, "id", PQgetvalue(res, i, 0));
        jw_kstr(w, "tenant_id",
                PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1));
        jw_kstr(w, "actor_id",
                PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2));
        jw_kstr(w, "actor_email",
                PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3));
        jw_kstr(w, "action", PQgetvalue(res, i, 4));
        jw_kstr(w, "target",
                PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5));
        jw_key(w, "detail");
        org_jw_json(w, PQgetvalue(res, i, 6));
        jw_kstr(w, "client_ip",
                PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7));
        jw_kstr(w, "created_at", PQgetvalue(res, i, 8));
        jw_obj_end(w);
    }
    jw_page_end(w, total, limit, offset);

#undef AUDIT_WHERE
    return 0;
}
