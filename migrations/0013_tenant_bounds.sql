-- 0013_tenant_bounds: what a tenant admin may not decide alone (anyone can
-- register and own a tenant), and mail that forgets its secrets.

-- self_service: a tenant admin may activate the plan (POST
-- /service/subscriptions); any other plan is assigned by a platform admin
-- (PUT /admin/tenants/{id}/plan). Of the seeded plans only free is.
-- default_credentials: the plan's tenants may spend the route's default
-- provider credential (nginx's trueport_upstream_key, i.e. the operator's
-- keys) when they have not set their own. No plan does until the operator
-- says so (PATCH /admin/plans/{id}): a tenant that activated a paid plan
-- itself before this migration gets nothing of the operator's with it.
ALTER TABLE plans
    ADD COLUMN self_service boolean NOT NULL DEFAULT false,
    ADD COLUMN default_credentials boolean NOT NULL DEFAULT false;

UPDATE plans SET self_service = true WHERE id = 'free';

-- the count behind tenants.max_per_user (admin configs): the tenants a
-- user has created
CREATE INDEX tenants_created_by_idx ON tenants (created_by);

-- The outbox keeps who, what (the subject names the template) and when;
-- the body (it holds OTP codes, reset and invite tokens) is cleared once
-- sent or once it can no longer be sent, and rows go after the retention
-- (TRUEPORT_OUTBOX_RETENTION_DAYS, mail.c:mail_sweep).
ALTER TABLE outbox ALTER COLUMN body DROP NOT NULL;
UPDATE outbox SET body = NULL WHERE sent_at IS NOT NULL;
CREATE INDEX outbox_created_idx ON outbox (created_at);
