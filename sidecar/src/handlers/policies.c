/* handlers/policies.c - the tenants' policy rules: list, read, create,
 * replace, delete, and the endpoint the nginx module loads a tenant's
 * enabled rules from. Rules are validated by the gateway's own engine
 * (trueport_policy.c, linked in), so the API accepts exactly what the
 * gateway can compile, within its compile budgets: a rule's compiled size
 * (TRUEPORT_POLICY_RULE_BYTES), and after the write, in its transaction,
 * the tenant's enabled rules compiled as the gateway will load them
 * (TRUEPORT_POLICY_SET_BYTES, TRUEPORT_POLICY_REGEX_BYTES) and their JSON
 * as the gateway loads it (TRUEPORT_POLICY_LOAD_BYTES). Every write
 * moves the tenant's policy_revision in the same transaction (a trigger,
 * migrations/0006_policies.sql). */
#include "handlers.h"
#include "../audit.h"
#include "../config.h"
#include "../log.h"

#include "trueport_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_NAME_MAX       200        /* characters */
#define POLICY_PRIORITY_MIN   0
#define POLICY_PRIORITY_MAX   10000
#define POLICY_PRIORITY_DFLT  100
#define POLICY_MAX_PER_TENANT 1000       /* the engine's own cap is 10000 */

/* a policy as the management API shows it; jw_policy_row() reads them in
 * this order */
#define POLICY_COLS                                                         \
    " p.id, p.name, p.type, p.config, p.action, p.enabled, p.priority,"     \
    " p.scope, p.created_by, " ORG_UTC("p.created_at") ","               \
    " " ORG_UTC("p.updated_at")

/* evaluation order, for the list and for the gateway */
#define POLICY_ORDER " ORDER BY p.priority, p.created_at, p.id"

/* the config members each type reads; anything else is a mistake (a typo
 * would otherwise be ignored silently) */
static const struct {
    const char *type;
    const char *fields[3];
} config_fields[] = {
    { "regex",    { "patterns", NULL } },
    { "keywords", { "keywords", NULL } },
    { "pii",      { "detectors", NULL } },
    { "model",    { "allow", "deny", NULL } },
    { "limits",   { "max_prompt_chars", "max_output_tokens", NULL } },
};

/* A validated request body: the columns to write, JSON texts canonical. */
typedef struct {
    const char *name;
    const char *type;
    const char *action;
    int         enabled;
    long long   priority;
    char       *config;          /* malloc'd, freed with the request */
    char       *scope;           /* {"providers", "envs", "key_ids"} */
    int         scoped;          /* envs or key_ids to check in the database */
    size_t      bytes;           /* compiled size, as the gateway counts it */
} policy_in_t;


/* -- validation ---------------------------------------------------------- */

/* Replaces what is not well-formed UTF-8 (a sequence the engine's "%.64s"
 * cut in two) by '?', in place, so the error reply stays valid JSON text. */
static void
utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *) s;
    int            n, i;

    while (*p) {
        n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 && *p >= 0xc2 ? 1
            : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 && *p <= 0xf4 ? 3
            : -1;
        for (i = 1; n > 0 && i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                n = -1;
            }
        }
        if (n < 0) {
            *p++ = '?';
            continue;
        }
        p += n + 1;
    }
}


/* 1..200 characters (yajl has checked the UTF-8), no control characters,
 * something visible */
static int
field_name(req_t *r, yajl_val body, const char **out)
{
    const unsigned char *s;
    size_t               chars = 0;
    int                  visible = 0;

    if (req_field_str(r, body, "name", F_REQUIRED, 4 * POLICY_NAME_MAX, out)
        != 0)
    {
        return -1;
    }
    for (s = (const unsigned char *) *out; *s; s++) {
        if (*s < 0x20 || *s == 0x7f) {
            goto bad;
        }
        if ((*s & 0xc0) != 0x80) {
            chars++;
        }
        if (*s != ' ') {
            visible = 1;
        }
    }
    if (visible && chars <= POLICY_NAME_MAX) {
        return 0;
    }

bad:
    reply_error(r, 422, "invalid_field",
                "\"name\" must be 1 to %d characters, without control"
                " characters", POLICY_NAME_MAX);
    return -1;
}


/* Only the body's own fields; the read-only ones a client got from GET
 * (id, created_by, created_at, updated_at) may come back and are ignored,
 * except an id that names another policy. */
static int
only_fields(req_t *r, yajl_val body, const char *path_id)
{
    static const char *const allowed[] = {
        "name", "type", "config", "action", "enabled", "priority", "scope",
        "id", "created_by", "created_at", "updated_at", NULL
    };
    const char *const *a;
    yajl_val           v;
    size_t             i;

    for (i = 0; i < body->u.object.len; i++) {
        for (a = allowed; *a != NULL; a++) {
            if (strcmp(body->u.object.keys[i], *a) == 0) {
                break;
            }
        }
        if (*a == NULL) {
            reply_error(r, 422, "unknown_field", "unknown field \"%s\"",
                        org_safe(r, body->u.object.keys[i], 64));
            return -1;
        }
    }

    v = json_get(body, "id");
    if (path_id != NULL && v != NULL && !YAJL_IS_NULL(v)
        && !(YAJL_IS_STRING(v) && strcasecmp(v->u.string, path_id) == 0))
    {
        reply_error(r, 422, "invalid_field",
                    "\"id\" does not match the policy in the path");
        return -1;
    }
    return 0;
}


/* scope: absent or null (no restriction), or an object of optional string
 * lists. Written out whole, every list present, key ids in lowercase (the
 * gateway compares them with the ids it resolved). The engine checks the
 * lists' strings and the provider names. */
static int
field_scope(req_t *r, yajl_val body, jw_t *w, int *scoped)
{
    static const char *const lists[] = { "providers", "envs", "key_ids",
                                         NULL };
    const char *const *l;
    yajl_val           scope, v, e;
    size_t             i, j;
    char               id[37];

    *scoped = 0;
    scope = json_get(body, "scope");
    if (scope != NULL && !YAJL_IS_NULL(scope) && !YAJL_IS_OBJECT(scope)) {
        reply_error(r, 422, "invalid_field",
                    "\"scope\" must be an object: {providers, envs, key_ids}");
        return -1;
    }
    if (scope != NULL && YAJL_IS_OBJECT(scope)) {
        for (i = 0; i < scope->u.object.len; i++) {
            for (l = lists; *l != NULL; l++) {
                if (strcmp(scope->u.object.keys[i], *l) == 0) {
                    break;
                }
            }
            if (*l == NULL) {
                reply_error(r, 422, "unknown_field",
                            "unknown field \"scope.%s\" (expected providers,"
                            " envs, key_ids)",
                            org_safe(r, scope->u.object.keys[i], 64));
                return -1;
            }
        }
    }

    jw_obj(w);
    for (l = lists; *l != NULL; l++) {
        v = json_get(scope, *l);
        jw_key(w, *l);
        if (v == NULL || YAJL_IS_NULL(v)) {
            jw_arr(w);
            jw_arr_end(w);
            continue;
        }
        if (!YAJL_IS_ARRAY(v)) {
            reply_error(r, 422, "invalid_field",
                        "scope.%s: must be an array of strings", *l);
            return -1;
        }
        if (strcmp(*l, "key_ids") != 0) {
            *scoped |= strcmp(*l, "envs") == 0 && v->u.array.len > 0;
            jw_tree(w, v);
            continue;
        }

        jw_arr(w);
        for (j = 0; j < v->u.array.len; j++) {
            e = v->u.array.values[j];
            if (!YAJL_IS_STRING(e) || !is_uuid(e->u.string)) {
                reply_error(r, 422, "invalid_field",
                            "scope.key_ids[%zu]: must be a key id (a UUID)",
                            j);
                return -1;
            }
            for (i = 0; i < 36; i++) {
                id[i] = (char) tolower((unsigned char) e->u.string[i]);
            }
            id[36] = '\0';
            jw_str(w, id);
            *scoped = 1;
        }
        jw_arr_end(w);
    }
    jw_obj_end(w);
    return 0;
}


/* config members the type does not read */
static int
config_only_fields(req_t *r, const char *type, yajl_val config)
{
    const char *const *f = NULL;
    size_t             i, t;

    for (t = 0; t < sizeof(config_fields) / sizeof(config_fields[0]); t++) {
        if (strcmp(type, config_fields[t].type) == 0) {
            f = config_fields[t].fields;
            break;
        }
    }
    if (f == NULL) {
        return 0;                  /* the engine has refused the type */
    }
    for (i = 0; i < config->u.object.len; i++) {
        const char *const *a;

        for (a = f; *a != NULL; a++) {
            if (strcmp(config->u.object.keys[i], *a) == 0) {
                break;
            }
        }
        if (*a == NULL) {
            reply_error(r, 422, "unknown_field",
                        "unknown field \"config.%s\" for a %s rule",
                        org_safe(r, config->u.object.keys[i], 64), type);
            return -1;
        }
    }
    return 0;
}


static char *
jw_keep(req_t *r, jw_t *w)
{
    char *s = jw_steal(w, NULL);

    req_defer(r, free, s);
    return s;
}


/* the gateway's limits with the budgets of this sidecar's settings */
static void
policy_limits(tp_policy_limits_t *lim)
{
    *lim = tp_policy_limits_default;
    lim->set_bytes = (size_t) cfg.policy_set_bytes;
    lim->rule_bytes = (size_t) cfg.policy_rule_bytes;
    lim->regex_bytes = (size_t) cfg.policy_regex_bytes;
}


/* The body of POST and PUT, {name, type, config, action, enabled?,
 * priority?, scope?}, into *in; the rule the gateway will compile is
 * checked by the engine itself. path_id: PUT's id, else NULL. */
static int
policy_parse(req_t *r, const char *path_id, policy_in_t *in)
{
    tp_policy_limits_t  lim;
    char       err[320];
    yajl_val   body, config;
    jw_t       w, s;
    char      *rule;

    memset(in, 0, sizeof(*in));
    in->enabled = 1;
    in->priority = POLICY_PRIORITY_DFLT;

    if (req_json_body(r, &body) != 0
        || only_fields(r, body, path_id) != 0)
    {
        return -1;
    }
    if (field_name(r, body, &in->name) != 0
        || req_field_str(r, body, "type", F_REQUIRED, 64, &in->type) != 0
        || req_field_str(r, body, "action", F_REQUIRED, 64, &in->action)
           != 0
        || req_field_bool(r, body, "enabled", F_NULLABLE, &in->enabled,
                          NULL) != 0
        || req_field_int(r, body, "priority", F_NULLABLE,
                         POLICY_PRIORITY_MIN, POLICY_PRIORITY_MAX,
                         &in->priority, NULL) != 0)
    {
        return -1;
    }

    config = json_get(body, "config");
    if (config == NULL) {
        reply_error(r, 422, "missing_field", "\"config\" is required");
        return -1;
    }
    if (!YAJL_IS_OBJECT(config)) {
        reply_error(r, 422, "invalid_field", "\"config\" must be an object");
        return -1;
    }

    jw_init(&s);
    if (field_scope(r, body, &s, &in->scoped) != 0) {
        jw_free(&s);
        return -1;
    }
    in->scope = jw_keep(r, &s);

    jw_init(&w);
    jw_tree(&w, config);
    in->config = jw_keep(r, &w);

    /* exactly what will be stored, as the gateway will read it */
    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "name", in->name);
    jw_kstr(&w, "type", in->type);
    jw_kraw(&w, "config", in->config);
    jw_kstr(&w, "action", in->action);
    jw_kbool(&w, "enabled", in->enabled);
    jw_kint(&w, "priority", in->priority);
    jw_kraw(&w, "scope", in->scope);
    jw_obj_end(&w);
    rule = jw_keep(r, &w);

    policy_limits(&lim);
    switch (tp_policy_check_rule(rule, strlen(rule), &lim, &in->bytes, err,
                                 sizeof(err)))
    {
    case TP_POLICY_OK:
        break;
    case TP_POLICY_ENOMEM:
        log_error("req=%s msg=\"policy validation ran out of memory\"",
                  r->id);
        reply_error(r, 503, "out_of_memory",
                    "the rule cannot be checked now, retry later");
        return -1;
    case TP_POLICY_EBUDGET:
        utf8_scrub(err);
        reply_error(r, 422, "policy_too_large", "rule \"%s\": %s",
                    org_safe(r, in->name, 64), err);
        return -1;
    default:
        utf8_scrub(err);
        reply_error(r, 422, "invalid_field", "%s", err);
        return -1;
    }

    return config_only_fields(r, in->type, config);
}


/* The scope's environments and keys must be the tenant's own (a deleted
 * key still counts, so that a rule read back and sent again unchanged
 * stays valid). Sends no query when the scope names neither. */
static int
policy_check_scope(req_t *r, const policy_in_t *in)
{
    PGresult *res;

    if (!in->scoped) {
        return 0;
    }
    res = dbq(r,
              "SELECT"
              " (SELECT i - 1"
              "   FROM jsonb_array_elements_text($2::jsonb -> 'envs')"
              "   WITH ORDINALITY a(e, i)"
              "   WHERE NOT a.e = ANY (t.environments) ORDER BY i LIMIT 1),"
              " array_to_string(t.environments, ', '),"
              " (SELECT i - 1"
              "   FROM jsonb_array_elements_text($2::jsonb -> 'key_ids')"
              "   WITH ORDINALITY a(k, i)"
              "   WHERE NOT EXISTS (SELECT 1 FROM api_keys k"
              "    WHERE k.tenant_id = t.id AND k.id = a.k::uuid)"
              "   ORDER BY i LIMIT 1)"
              " FROM tenants t WHERE t.id = $1",
              2, r->auth.tenant_id, in->scope);
    if (res == NULL) {
        return -1;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such tenant");
        return -1;
    }
    if (!PQgetisnull(res, 0, 0)) {
        reply_error(r, 422, "invalid_field",
                    "scope.envs[%s]: not one of the tenant's environments"
                    " (%s)", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
        return -1;
    }
    if (!PQgetisnull(res, 0, 2)) {
        reply_error(r, 422, "invalid_field",
                    "scope.key_ids[%s]: not one of the tenant's keys",
                    PQgetvalue(res, 0, 2));
        return -1;
    }
    return 0;
}


/* Locks the tenant's row for the transaction: one policy write per tenant
 * at a time, so the count below is exact and revisions follow the order
 * of the commits. */
static int
policy_lock_tenant(req_t *r)
{
    PGresult *res;

    res = dbq(r, "SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE", 1,
              r->auth.tenant_id);
    if (res == NULL) {
        return -1;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such tenant");
        return -1;
    }
    return 0;
}


/* The tenant's enabled rules in evaluation order, as
 * {"tenant_id", "revision", "rules": [..]}: the gateway's load, and what
 * the budget check compiles. NULL when a reply has been sent. */
static char *
policy_rules_json(req_t *r, const char *tenant)
{
    PGresult *res;
    jw_t      w;
    int       i;

    res = dbq(r,
              "SELECT t.id, t.policy_revision, p.id, p.name, p.type,"
              " p.config, p.action, p.priority, p.scope"
              " FROM tenants t"
              " LEFT JOIN policies p ON p.tenant_id = t.id AND p.enabled"
              " WHERE t.id = $1" POLICY_ORDER,
              1, tenant);
    if (res == NULL) {
        return NULL;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such tenant");
        return NULL;
    }

    jw_init(&w);
    jw_obj(&w);
    jw_kstr(&w, "tenant_id", PQgetvalue(res, 0, 0));
    jw_kraw(&w, "revision", PQgetvalue(res, 0, 1));
    jw_key(&w, "rules");
    jw_arr(&w);
    for (i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 2)) {
            break;                     /* the LEFT JOIN's row: no rules */
        }
        jw_obj(&w);
        jw_kstr(&w, "id", PQgetvalue(res, i, 2));
        jw_kstr(&w, "name", PQgetvalue(res, i, 3));
        jw_kstr(&w, "type", PQgetvalue(res, i, 4));
        /* jsonb's own text: valid JSON, and no cost of a second parse */
        jw_kraw(&w, "config", PQgetvalue(res, i, 5));
        jw_kstr(&w, "action", PQgetvalue(res, i, 6));
        jw_kbool(&w, "enabled", 1);
        jw_kraw(&w, "priority", PQgetvalue(res, i, 7));
        jw_kraw(&w, "scope", PQgetvalue(res, i, 8));
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    return jw_keep(r, &w);
}


/* After the write, in its transaction: the tenant's enabled rules, exactly
 * as the gateway will load them, compiled within the set's budgets, or a
 * 422 that names the rule written, its size, the total and the budget.
 * Compiled with a rule's worth of room above the budgets, so the total is
 * known; a tenant already over them (the operator lowered a budget) gets
 * the engine's own reason. */
static int
policy_check_budget(req_t *r, const policy_in_t *in)
{
    tp_policy_limits_t  lim;
    tp_policy_set_t    *set;
    const char         *json;
    char                err[320];
    size_t              total, regex;
    int                 code;

    if (!in->enabled) {
        return 0;                  /* the gateway does not compile it */
    }
    json = policy_rules_json(r, r->auth.tenant_id);
    if (json == NULL) {
        return -1;
    }
    /* the gateway reads the load into one buffer of its policies location
     * (subrequest_output_buffer_size, 1m as shipped): a larger answer could
     * never be loaded */
    if (strlen(json) > (size_t) cfg.policy_load_bytes) {
        reply_error(r, 422, "policy_too_large",
                    "rule \"%s\": the organisation's enabled rules would be"
                    " %zu bytes of JSON for the gateway to load, over the"
                    " limit of %ld bytes", org_safe(r, in->name, 64),
                    strlen(json), cfg.policy_load_bytes);
        return -1;
    }
    policy_limits(&lim);
    lim.set_bytes += lim.rule_bytes;
    lim.regex_bytes += lim.rule_bytes;
    set = tp_policy_compile_limits(&tp_alloc_libc, json, strlen(json), &lim,
                                   &code, err, sizeof(err));
    if (set == NULL) {
        if (code == TP_POLICY_ENOMEM) {
            log_error("req=%s msg=\"policy budget check ran out of memory\"",
                      r->id);
            reply_error(r, 503, "out_of_memory",
                        "the rule cannot be checked now, retry later");
            return -1;
        }
        utf8_scrub(err);
        reply_error(r, 422, code == TP_POLICY_EBUDGET ? "policy_too_large"
                    : "invalid_field", "rule \"%s\" (%zu bytes compiled):"
                    " the organisation's enabled rules do not compile within"
                    " the gateway's budgets: %s", org_safe(r, in->name, 64),
                    in->bytes, err);
        return -1;
    }
    total = tp_policy_size(set);
    regex = tp_policy_regex_size(set);
    tp_policy_destroy(set);

    if (total > (size_t) cfg.policy_set_bytes) {
        reply_error(r, 422, "policy_too_large",
                    "rule \"%s\" compiles to %zu bytes: with the"
                    " organisation's other enabled rules that is %zu bytes,"
                    " over the budget of %ld bytes for a rule set (disable"
                    " or shrink a rule first)", org_safe(r, in->name, 64),
                    in->bytes, total, cfg.policy_set_bytes);
        return -1;
    }
    if (regex > (size_t) cfg.policy_regex_bytes) {
        reply_error(r, 422, "policy_too_large",
                    "rule \"%s\": the organisation's enabled regex rules"
                    " would compile to %zu bytes of code, over the budget of"
                    " %ld bytes for a rule set's regexes",
                    org_safe(r, in->name, 64), regex,
                    cfg.policy_regex_bytes);
        return -1;
    }
    return 0;
}


/* audit detail: what identifies the rule, never its config */
static int
policy_audit(req_t *r, const char *action, PGresult *res, int full)
{
    jw_t  d;
    char *detail;
    int   rc;

    jw_init(&d);
    jw_obj(&d);
    jw_kstr(&d, "name", PQgetvalue(res, 0, 1));
    jw_kstr(&d, "type", PQgetvalue(res, 0, 2));
    if (full) {
        jw_kstr(&d, "action", PQgetvalue(res, 0, 4));
        jw_kbool(&d, "enabled", PQgetvalue(res, 0, 5)[0] == 't');
        jw_kraw(&d, "priority", PQgetvalue(res, 0, 6));
    }
    jw_obj_end(&d);
    detail = jw_steal(&d, NULL);
    rc = audit_record(r, r->auth.tenant_id, action, PQgetvalue(res, 0, 0),
                      detail);
    free(detail);
    return rc;
}


/* -- output -------------------------------------------------------------- */

/* One policy from POLICY_COLS. */
static void
jw_policy_row(jw_t *w, PGresult *res, int row)
{
    jw_obj(w);
    org_jw_col(w, "id", res, row, 0, ORG_STR);
    org_jw_col(w, "name", res, row, 1, ORG_STR);
    org_jw_col(w, "type", res, row, 2, ORG_STR);
    jw_key(w, "config");
    jw_jsonb(w, PQgetisnull(res, row, 3) ? NULL : PQgetvalue(res, row, 3));
    org_jw_col(w, "action", res, row, 4, ORG_STR);
    org_jw_col(w, "enabled", res, row, 5, ORG_BOOL);
    org_jw_col(w, "priority", res, row, 6, ORG_NUM);
    jw_key(w, "scope");
    jw_jsonb(w, PQgetisnull(res, row, 7) ? NULL : PQgetvalue(res, row, 7));
    org_jw_col(w, "created_by", res, row, 8, ORG_STR);
    jw_key(w, "created_at");
    jw_pg_ts(w, PQgetvalue(res, row, 9));
    jw_key(w, "updated_at");
    jw_pg_ts(w, PQgetvalue(res, row, 10));
    jw_obj_end(w);
}


/* -- routes -------------------------------------------------------------- */

/* GET /trueportai-services/api/v1/policies?type=&enabled=&limit=&offset=
 * in evaluation order (priority, then creation) */
void
h_policies_list(req_t *r)
{
    const char *type, *enabled;
    char        slimit[24], soffset[24];
    long        limit, offset;
    long long   total;
    PGresult   *res;
    size_t      t;
    jw_t        w;
    int         i;

    if (req_page(r, &limit, &offset) != 0) {
        return;
    }
    type = req_query(r, "type");
    if (type != NULL) {
        for (t = 0; t < sizeof(config_fields) / sizeof(config_fields[0]);
             t++)
        {
            if (strcmp(type, config_fields[t].type) == 0) {
                break;
            }
        }
        if (t == sizeof(config_fields) / sizeof(config_fields[0])) {
            reply_error(r, 400, "invalid_filter",
                        "type must be regex, keywords, pii, model or limits");
            return;
        }
    }
    enabled = req_query(r, "enabled");
    if (enabled != NULL && strcmp(enabled, "true") != 0
        && strcmp(enabled, "false") != 0)
    {
        reply_error(r, 400, "invalid_filter", "enabled must be true or false");
        return;
    }
    snprintf(slimit, sizeof(slimit), "%ld", limit);
    snprintf(soffset, sizeof(soffset), "%ld", offset);

#define POLICIES_WHERE                                                      \
    " WHERE p.tenant_id = $1"                                               \
    " AND ($2::text IS NULL OR p.type = $2)"                                \
    " AND ($3::boolean IS NULL OR p.enabled = $3)"

#define POLICIES_PAGE "FROM policies p" POLICIES_WHERE POLICY_ORDER

    /* the page first, then its columns (see h_keys_list) */
    res = dbq(r,
              "SELECT" POLICY_COLS ","
              PAGE_TOTAL_IF_MORE("$4", "$5", POLICIES_PAGE,
                                 "SELECT count(*) FROM policies p"
                                 POLICIES_WHERE)
              " FROM (SELECT * " POLICIES_PAGE " LIMIT $4 OFFSET $5) p"
              POLICY_ORDER,
              5, r->auth.tenant_id, type, enabled, slimit, soffset);
    if (res == NULL) {
        return;
    }
    if (page_total(r, res, offset, &total,
                   "SELECT count(*) FROM policies p" POLICIES_WHERE,
                   3, r->auth.tenant_id, type, enabled) != 0)
    {
        return;
    }
#undef POLICIES_PAGE
#undef POLICIES_WHERE

    jw_init(&w);
    jw_page_begin(&w);
    for (i = 0; i < PQntuples(res); i++) {
        jw_policy_row(&w, res, i);
    }
    jw_page_end(&w, total, limit, offset);
    reply_json(r, 200, &w);
}


/* GET /trueportai-services/api/v1/policies/{id} */
void
h_policies_get(req_t *r)
{
    const char *id;
    PGresult   *res;
    jw_t        w;

    id = req_param(r, "id");
    if (!is_uuid(id)) {
        reply_error(r, 404, "not_found", "no such policy");
        return;
    }
    res = dbq(r,
              "SELECT" POLICY_COLS " FROM policies p"
              " WHERE p.id = $2 AND p.tenant_id = $1",
              2, r->auth.tenant_id, id);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such policy");
        return;
    }

    jw_init(&w);
    jw_policy_row(&w, res, 0);
    reply_json(r, 200, &w);
}


/* POST /trueportai-services/api/v1/policies
 * {name, type, config, action, enabled?, priority?, scope?} -> 201 */
void
h_policies_create(req_t *r)
{
    char         sprio[24];
    policy_in_t  in;
    PGresult    *res;
    jw_t         w;

    if (policy_parse(r, NULL, &in) != 0
        || policy_check_scope(r, &in) != 0
        || db_begin(r) != 0
        || policy_lock_tenant(r) != 0)
    {
        return;
    }

    res = dbq(r, "SELECT count(*) FROM policies WHERE tenant_id = $1", 1,
              r->auth.tenant_id);
    if (res == NULL) {
        return;
    }
    if (atoll(PQgetvalue(res, 0, 0)) >= POLICY_MAX_PER_TENANT) {
        reply_error(r, 409, "policy_limit_reached",
                    "a tenant may have at most %d policies: delete one"
                    " first", POLICY_MAX_PER_TENANT);
        return;
    }

    snprintf(sprio, sizeof(sprio), "%lld", in.priority);
    res = dbq(r,
              "WITH p AS (INSERT INTO policies (tenant_id, name, type, config,"
              "  action, enabled, priority, scope, created_by)"
              "  VALUES ($1, $2, $3, $4::jsonb, $5, $6::boolean, $7::int,"
              "   $8::jsonb, $9)"
              "  RETURNING *)"
              " SELECT" POLICY_COLS " FROM p",
              9, r->auth.tenant_id, in.name, in.type, in.config, in.action,
              in.enabled ? "t" : "f", sprio, in.scope, r->auth.user_id);
    if (res == NULL
        || policy_check_budget(r, &in) != 0
        || policy_audit(r, "policy.create", res, 1) != 0
        || db_commit(r) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_policy_row(&w, res, 0);
    reply_json(r, 201, &w);
}


/* PUT /trueportai-services/api/v1/policies/{id}: a full replacement (what
 * the body leaves out takes its default) -> 200 */
void
h_policies_update(req_t *r)
{
    char         sprio[24];
    const char  *id;
    policy_in_t  in;
    PGresult    *res;
    jw_t         w;

    id = req_param(r, "id");
    if (!is_uuid(id)) {
        reply_error(r, 404, "not_found", "no such policy");
        return;
    }
    if (policy_parse(r, id, &in) != 0
        || policy_check_scope(r, &in) != 0
        || db_begin(r) != 0
        || policy_lock_tenant(r) != 0)
    {
        return;
    }

    snprintf(sprio, sizeof(sprio), "%lld", in.priority);
    res = dbq(r,
              "WITH p AS (UPDATE policies SET name = $3, type = $4,"
              "  config = $5::jsonb, action = $6, enabled = $7::boolean,"
              "  priority = $8::int, scope = $9::jsonb, updated_at = now()"
              "  WHERE id = $2 AND tenant_id = $1"
              "  RETURNING *)"
              " SELECT" POLICY_COLS " FROM p",
              9, r->auth.tenant_id, id, in.name, in.type, in.config,
              in.action, in.enabled ? "t" : "f", sprio, in.scope);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such policy");
        return;
    }
    if (policy_check_budget(r, &in) != 0
        || policy_audit(r, "policy.update", res, 1) != 0
        || db_commit(r) != 0)
    {
        return;
    }

    jw_init(&w);
    jw_policy_row(&w, res, 0);
    reply_json(r, 200, &w);
}


/* DELETE /trueportai-services/api/v1/policies/{id} -> 204. The row goes:
 * violations keep the rule's id and name. */
void
h_policies_delete(req_t *r)
{
    const char *id;
    PGresult   *res;

    id = req_param(r, "id");
    if (!is_uuid(id)) {
        reply_error(r, 404, "not_found", "no such policy");
        return;
    }
    if (db_begin(r) != 0 || policy_lock_tenant(r) != 0) {
        return;
    }
    res = dbq(r,
              "DELETE FROM policies WHERE id = $2 AND tenant_id = $1"
              " RETURNING id, name, type", 2, r->auth.tenant_id, id);
    if (res == NULL) {
        return;
    }
    if (PQntuples(res) == 0) {
        reply_error(r, 404, "not_found", "no such policy");
        return;
    }
    if (policy_audit(r, "policy.delete", res, 0) != 0 || db_commit(r) != 0) {
        return;
    }

    reply_raw(r, 204, "");
}


/* -- the gateway's load ---------------------------------------------------- */

/* GET /internal/v1/policies?tenant_id=<uuid> (nginx only) ->
 * {"tenant_id", "revision", "rules": [..]}: the enabled rules in
 * evaluation order, an array tp_policy_compile() takes as it is. One
 * statement, so the revision and the rules come from one snapshot. */
void
h_policies_internal(req_t *r)
{
    const char *tenant, *json;

    tenant = req_query(r, "tenant_id");
    if (!is_uuid(tenant)) {
        reply_error(r, 400, "invalid_tenant_id", "tenant_id must be a UUID");
        return;
    }

    json = policy_rules_json(r, tenant);
    if (json == NULL) {
        return;
    }
    reply_raw(r, 200, json);
}
