/* handlers/health.c - GET /health: the sidecar and its database */
#include "handlers.h"
#include "../db.h"

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
    jw_kstr(&w, "database", res ? "ok" : "unavailable");
    if (res != NULL) {
        jw_kint(&w, "schema_version", atoll(PQgetvalue(res, 0, 0)));
    } else {
        jw_knull(&w, "schema_version");
    }
    jw_obj_end(&w);

    reply_json(r, res ? 200 : 503, &w);
}
