/* audit.h - the audit trail: who did what to which tenant, and when */
#ifndef TP_AUDIT_H
#define TP_AUDIT_H

#include "req.h"

/* Appends one row to audit_log: the actor is r's user, tenant_id may be
 * NULL (platform-wide), target names the object (a user id, a config key),
 * detail is a JSON object text or NULL. Call it inside the transaction of
 * the change it records, so both commit or neither. Never pass a secret.
 * 0, or -1 with the error reply sent. */
int audit_record(req_t *r, const char *tenant_id, const char *action,
                 const char *target, const char *detail)
    __attribute__((warn_unused_result));

/* Writes the page envelope of a tenant's trail (tenant_id NULL: every
 * tenant's) newest first; "action" in the query string filters by a prefix
 * ("member." ...). 0, or -1 with the error reply sent. */
int audit_list(req_t *r, const char *tenant_id, jw_t *w)
    __attribute__((warn_unused_result));

#endif
