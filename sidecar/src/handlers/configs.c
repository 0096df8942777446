/* handlers/configs.c - a tenant's settings: a typed allowlist (anything else
 * is a 404), plain values as JSON, provider API keys encrypted with the
 * master key and never shown again; and the gateway's accessor for them */
#include "handlers.h"
#include "../audit.h"
#include "../config.h"
#include "../log.h"
#include "../secrets.h"
#include "trueport_endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    CT_RPM,             /* integer 1..the plan's max_rpm */
    CT_BOOL,
    CT_PROVIDERS,       /* array of distinct provider names */
    CT_SECRET,          /* string 8..512, stored encrypted */
    CT_URL              /* https URL the operator allows, up to 512 */
} ctype_t;

typedef struct {
    const char *key;
    ctype_t     type;
    const char *dflt;   /* JSON; NULL: computed (CT_RPM: the plan's) */
    const char *help;
} tconf_t;

static const tconf_t tconfs[] = {
    { "default_rpm", CT_RPM, NULL,
      "requests per minute for keys created without rpm" },
    { "log_prompts", CT_BOOL, "false",
      "keep prompt excerpts in violation records" },
    { "allowed_providers", CT_PROVIDERS,
      "[\"openai\",\"anthropic\",\"google\",\"azure\"]",
      "providers the tenant's keys may call" },
    { "providers.openai.api_key", CT_SECRET, NULL, "OpenAI API key" },
    { "providers.anthropic.api_key", CT_SECRET, NULL, "Anthropic API key" },
    { "providers.google.api_key", CT_SECRET, NULL, "Google Gemini API key" },
    { "providers.azure.api_key", CT_SECRET, NULL, "Azure OpenAI API key" },
    { "providers.azure.endpoint", CT_URL, "null",
      "Azure OpenAI base URL (https://{resource}.openai.azure.com; hosts"
      " the operator allows, TRUEPORT_ENDPOINT_ALLOWLIST)" },
};

#define N_TCONFS (sizeof(tconfs) / sizeof(tconfs[0]))

static const char *type_names[] = {
    [CT_RPM] = "integer", [CT_BOOL] = "boolean", [CT_PROVIDERS] = "array",
    [CT_SECRET] = "secret", [CT_URL] = "url",
};

static const char *providers[] = { "openai", "anthropic", "google", "azure",
                                   NULL };


static const tconf_t *
tconf_find(const char *key)
{
    size_t i;

    for (i = 0; i < N_TCONFS; i++) {
        if (strcmp(tconfs[i].key, key) == 0) {
            return &tconfs[i];
        }
    }
    return NULL;
}


/* no spaces or control characters (secrets, URLs) */
static int
printable_token(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char) *s <= ' ' || *s == 0x7f) {
            return 0;
        }
    }
    return 1;
}


/* Validate-or-reply for one value; v is never NULL (null means reset and
 * is handled by the caller). */
static int
check_value(req_t *r, const tconf_t *c, yajl_val v, const org_plan_t *p)
{
    size_t      i, j, n;
    const char *why;

    switch (c->type) {

    case CT_RPM:
        if (!YAJL_IS_INTEGER(v) || v->u.number.i < 1
            || v->u.number.i > p->max_rpm)
        {
            reply_error(r, 422, "invalid_value",
                        "%s must be an integer between 1 and %lld (the %s"
                        " plan's maximum)", c->key, p->max_rpm, p->id);
            return -1;
        }
        return 0;

    case CT_BOOL:
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            reply_error(r, 422, "invalid_value", "%s must be true or false",
                        c->key);
            return -1;
        }
        return 0;

    case CT_PROVIDERS:
        if (!YAJL_IS_ARRAY(v)) {
            goto bad_providers;
        }
        n = v->u.array.len;
        for (i = 0; i < n; i++) {
            yajl_val e = v->u.array.values[i];
            const char **pp;

            if (!YAJL_IS_STRING(e)) {
                goto bad_providers;
            }
            for (pp = providers; *pp; pp++) {
                if (strcmp(*pp, e->u.string) == 0) {
                    break;
                }
            }
            if (*pp == NULL) {
                goto bad_providers;
            }
            for (j = 0; j < i; j++) {
                if (strcmp(v->u.array.values[j]->u.string, e->u.string) == 0)
                {
                    reply_error(r, 422, "invalid_value",
                                "%s lists \"%s\" twice", c->key, e->u.string);
                    return -1;
                }
            }
        }
        return 0;

    bad_providers:
        reply_error(r, 422, "invalid_value",
                    "%s must be an array of openai, anthropic, google, azure",
                    c->key);
        return -1;

    case CT_SECRET:
        if (!YAJL_IS_STRING(v) || (n = strlen(v->u.string)) < 8 || n > 512
            || !printable_token(v->u.string))
        {
            reply_error(r, 422, "invalid_value",
                        "%s must be a string of 8 to 512 characters without"
                        " spaces", c->key);
            return -1;
        }
        return 0;

    case CT_URL:
        /* where the gateway sends the tenant's requests and credential:
         * the module checks it again before each use */
        if (!YAJL_IS_STRING(v) || (n = strlen(v->u.string)) > 512) {
            why = "a string of at most 512 characters is expected";
        } else if (tp_endpoint_check(v->u.string, n, cfg.endpoint_allowlist,
                                     strlen(cfg.endpoint_allowlist), &why)
                   == 0)
        {
            return 0;
        }
        reply_error(r, 422, "invalid_value",
                    "%s must be an https:// URL whose host the operator"
                    " allows (%s): %s", c->key, cfg.endpoint_allowlist, why);
        return -1;
    }
    return -1;
}


/* One entry: {key, type, value, is_default, updated_at, updated_by}.
 * Row columns: key, value, secret IS NOT NULL, last4, updated_at,
 * updated_by (NULL res: no row). */
static void
jw_entry(jw_t *w, const tconf_t *c, PGresult *res, int row,
    const org_plan_t *p)
{
    jw_obj(w);
    jw_kstr(w, "key", c->key);
    jw_kstr(w, "type", type_names[c->type]);
    jw_kstr(w, "description", c->help);
    jw_key(w, "value");

    if (c->type == CT_SECRET) {
        jw_obj(w);
        jw_kbool(w, "set", res != NULL);
        jw_kstr(w, "last4", res ? PQgetvalue(res, row, 3) : NULL);
        jw_obj_end(w);
    } else if (res != NULL) {
        org_jw_json(w, PQgetvalue(res, row, 1));
    } else if (c->type == CT_RPM) {
        jw_int(w, p->default_rpm);
    } else {
        jw_raw(w, c->dflt);
    }

    jw_kbool(w, "is_default", res == NULL);
    jw_kstr(w, "updated_at", res ? PQgetvalue(res, row, 4) : NULL);
    if (res != NULL) {
        org_jw_col(w, "updated_by", res, row, 5, ORG_STR);
    } else {
        jw_knull(w, "updated_by");
    }
    jw_obj_end(w);
}

#define CONF_COLS                                                           \
    " key, value, secret IS NOT NULL, last4, " ORG_TS("updated_at") ","     \
    " updated_by"


/* GET /service/configs: every allowlisted key, set or default */
void
h_configs_list(req_t *r)
{
    long       limit, offset, i;
    int        j;
    PGresult  *res;
    org_plan_t p;
    jw_t       w;

    if (req_page(r, &limit, &offset) != 0
        || org_tenant_plan(r, r->auth.tenant_id, &p) != 0)
    {
        return;
    }
    res = dbq(r, "SELECT" CONF_COLS " FROM tenant_configs"
                 " WHERE tenant_id = $1", 1, r->auth.tenant_id);
    if (res == NULL) {
        return;
    }

    jw_init(&w);
    jw_page_begin(&w);
    for (i = offset; i < (long) N_TCONFS && i < offset + limit; i++) {
        for (j = 0; j < PQntuples(res); j++) {
            if (strcmp(PQgetvalue(res, j, 0), tconfs[i].key) == 0) {
                break;
            }
        }
        jw_entry(&w, &tconfs[i], j < PQntuples(res) ? res : NULL, j, &p);
    }
    jw_page_end(&w, N_TCONFS, limit, offset);
    reply_json(r, 200, &w);
}


/* PUT /service/configs/{key} {value}: null resets to the default (and
 * removes a stored secret) */
void
h_configs_put(req_t *r)
{
    static const char *const fields[] = { "value", NULL };
    const tconf_t *c;
    const char    *key, *plain, *detail;
    char          *enc, aad[160], *json;
    PGresult      *res;
    org_plan_t     p;
    yajl_val       body, v;
    jw_t           w, vj;
    size_t         n;

    key = req_param(r, "key");
    c = tconf_find(key);
    if (c == NULL) {
        reply_error(r, 404, "unknown_config", "no setting \"%s\"",
                    org_safe(r, key, 100));
        return;
    }
    if (req_json_body(r, &body) != 0
        || org_only_fields(r, body, fields) != 0)
    {
        return;
    }
    v = json_get(body, "value");
    if (v == NULL) {
        reply_error(r, 422, "missing_field",
                    "\"value\" is required (null resets to the default)");
        return;
    }
    if (org_tenant_plan(r, r->auth.tenant_id, &p) != 0) {
        return;
    }
    if (!YAJL_IS_NULL(v) && check_value(r, c, v, &p) != 0) {
        return;
    }

    if (db_begin(r) != 0) {
        return;
    }

    if (YAJL_IS_NULL(v)) {
        if (dbq(r, "DELETE FROM tenant_configs WHERE tenant_id = $1"
                   " AND key = $2", 2, r->auth.tenant_id, c->key) == NULL)
        {
            return;
        }
        res = NULL;                 /* no row: the default is shown */
        detail = "{\"reset\":true}";

    } else if (c->type == CT_SECRET) {
        plain = v->u.string;
        n = strlen(plain);
        enc = secret_encrypt(cfg.master_key, plain,
                             secret_tenant_aad(aad, sizeof(aad),
                                               r->auth.tenant_id, c->key));
        if (enc == NULL) {
            log_error("req=%s msg=\"cannot encrypt a secret\"", r->id);
            reply_error(r, 500, "internal_error", "internal error");
            return;
        }
        res = dbq(r,
                  "INSERT INTO tenant_configs (tenant_id, key, secret, last4,"
                  " updated_by) VALUES ($1, $2, $3, $4, $5)"
                  " ON CONFLICT (tenant_id, key) DO UPDATE SET value = NULL,"
                  " secret = EXCLUDED.secret, last4 = EXCLUDED.last4,"
                  " updated_at = now(), updated_by = EXCLUDED.updated_by"
                  " RETURNING" CONF_COLS, 5,
                  r->auth.tenant_id, c->key, enc, plain + n - 4,
                  r->auth.user_id);
        free(enc);
        if (res == NULL) {
            return;
        }
        /* the value itself never reaches the audit trail */
        detail = "{\"secret\":true}";

    } else {
        jw_init(&vj);
        jw_tree(&vj, v);
        json = arena_strdup(&r->arena, vj.buf ? vj.buf : "null");
        jw_free(&vj);
        res = dbq(r,
                  "INSERT INTO tenant_configs (tenant_id, key, value,"
                  " updated_by) VALUES ($1, $2, $3, $4)"
                  " ON CONFLICT (tenant_id, key) DO UPDATE"
                  " SET value = EXCLUDED.value, secret = NULL, last4 = NULL,"
                  " updated_at = now(), updated_by = EXCLUDED.updated_by"
                  " RETURNING" CONF_COLS, 4,
                  r->auth.tenant_id, c->key, json, r->auth.user_id);
        if (res == NULL) {
            return;
        }
        detail = arena_sprintf(&r->arena, "{\"value\":%s}",
                               PQgetvalue(res, 0, 1));
    }

    if (audit_record(r, r->auth.tenant_id, "config.changed", c->key, detail)
        != 0 || db_commit(r) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_entry(&w, c, res, 0, &p);
    reply_json(r, 200, &w);
}


char *
tenant_provider_credential(req_t *r, const char *tenant_id,
    const char *provider)
{
    const char  *state, **pp;
    char         key[64], aad[160], *plain;
    PGresult    *res;

    for (pp = providers; *pp; pp++) {
        if (provider != NULL && strcmp(*pp, provider) == 0) {
            break;
        }
    }
    if (*pp == NULL || !is_uuid(tenant_id)) {
        return NULL;
    }
    snprintf(key, sizeof(key), "providers.%s.api_key", provider);

    res = dbq_try(r, &state,
                  "SELECT secret FROM tenant_configs WHERE tenant_id = $1"
                  " AND key = $2 AND secret IS NOT NULL", 2, tenant_id, key);
    if (res == NULL) {
        log_error("req=%s msg=\"cannot read a provider credential\""
                  " sqlstate=%s", r->id, state[0] ? state : "-");
        return NULL;
    }
    if (PQntuples(res) == 0) {
        return NULL;
    }

    plain = secret_decrypt(cfg.master_key, PQgetvalue(res, 0, 0),
                           secret_tenant_aad(aad, sizeof(aad), tenant_id,
                                             key));
    if (plain == NULL) {
        log_error("req=%s msg=\"a provider credential does not decrypt"
                  " (master key changed or the row was altered)\""
                  " tenant=%s key=%s", r->id, tenant_id, key);
    }
    return plain;
}
