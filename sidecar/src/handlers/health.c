/* handlers/health.c - GET /health: the sidecar and its database. The
 * details (schema version, spool backlog, the ingester's last error) are
 * for the operator: a client on loopback or a platform admin's token.
 * Anyone else gets the status alone, with the same 200 / 503. */
#include "handlers.h"
#include "../auth.h"
#include "../config.h"
#include "../db.h"
#include "../ingest.h"
#include "../peer.h"

#include <stdlib.h>


void
h_health_get(req_t *r)
{
    const char *state;
    PGresult   *res;
    jw_t        w;

    /* no dbq(): a database failure is the answer here, not an error */
    res = dbq_try(r, &state,
                  "SELECT coalesce(max(version), 0) FROM schema_migrations", 0);

    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "status", res ? "ok" : "degraded");
    if (!peer_is_loopback(r->client_ip) && !auth_is_platform_admin(r)) {
        jw_obj_end(&w);
        reply_json(r, res ? 200 : 503, &w);
        return;
    }
    jw_kstr(&w, "database", res ? "ok" : "unavailable");
    if (res != NULL) {
        jw_kint(&w, "schema_version", atoll(PQgetvalue(res, 0, 0)));
    } else {
        jw_knull(&w, "schema_version");
    }

    /* records written by nginx and not yet in the database */
    if (cfg.spool_dir[0] != '\0') {
        ingest_stats_t st;

        ingest_stats(&st);
        jw_key(&w, "spool");
        jw_obj(&w);
        jw_kint(&w, "backlog_bytes", st.backlog_bytes);
        jw_kint(&w, "backlog_records", st.backlog_records);
        jw_kint(&w, "files", st.files);
        jw_kint(&w, "ingested", st.ingested);
        jw_kint(&w, "rejected", st.rejected);
        jw_kint(&w, "unpriced", st.unpriced);
        jw_kstr(&w, "last_error", st.last_error[0] ? st.last_error : NULL);
        jw_obj_end(&w);
    }
    jw_obj_end(&w);

    reply_json(r, res ? 200 : 503, &w);
}
