-- 0003_org: what an organisation has besides its members: a plan and its
-- subscription history, configs (secrets encrypted by the sidecar),
-- storage settings, pending invitations, and the audit trail.

-- The catalog. Limits are read at request time, so a change here applies
-- to every tenant on the plan at once.
CREATE TABLE plans (
    id                  text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_-]{0,31}$'),
    name                text NOT NULL,
    default_rpm         integer NOT NULL CHECK (default_rpm > 0),
    max_keys            integer NOT NULL CHECK (max_keys >= 0),
    monthly_requests    bigint NOT NULL CHECK (monthly_requests >= 0),
    log_retention_days  integer NOT NULL CHECK (log_retention_days > 0),
    price_cents         integer NOT NULL CHECK (price_cents >= 0),
    -- the highest rpm a tenant may give a key or set as its default
    max_rpm             integer NOT NULL,
    CHECK (max_rpm >= default_rpm)
);

INSERT INTO plans (id, name, default_rpm, max_keys, monthly_requests,
                   log_retention_days, price_cents, max_rpm) VALUES
    ('free',       'Free',         60,    5,     10000,   7,     0,   120),
    ('pro',        'Pro',         600,   50,   1000000,  30,  4900,  3000),
    ('enterprise', 'Enterprise', 3000, 1000, 100000000, 365, 49900, 30000);

-- One row per activation; exactly one active row per tenant.
CREATE TABLE subscriptions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plan_id             text NOT NULL REFERENCES plans (id),
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'ended')),
    started_at          timestamptz NOT NULL DEFAULT now(),
    ended_at            timestamptz,
    activated_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    CHECK ((status = 'ended') = (ended_at IS NOT NULL))
);

CREATE UNIQUE INDEX subscriptions_one_active_idx ON subscriptions (tenant_id)
    WHERE status = 'active';
CREATE INDEX subscriptions_tenant_idx ON subscriptions (tenant_id, started_at DESC);

-- Per-tenant settings from the sidecar's allowlist (handlers/configs.c).
-- A plain setting has value; a secret has secret (secret_encrypt() output,
-- bound to tenant and key) and last4, never the plaintext. No row: default.
CREATE TABLE tenant_configs (
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key                 text NOT NULL CHECK (length(key) BETWEEN 1 AND 100),
    value               jsonb,
    secret              text CHECK (secret LIKE 'v1:%'),
    last4               text,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    updated_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    PRIMARY KEY (tenant_id, key),
    CHECK ((value IS NULL) <> (secret IS NULL))
);

-- Platform-wide settings from the admin allowlist (handlers/admin.c).
-- model_prices lives in the model_prices table (0005); its row here only
-- records who changed it last.
CREATE TABLE global_configs (
    key                 text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 100),
    value               jsonb NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    updated_by          uuid REFERENCES users (id) ON DELETE SET NULL
);

-- Log storage settings. No row: the plan's retention, nothing stored.
-- retention_days is clamped to the plan's log_retention_days on a plan
-- change and read as least(retention_days, plan's) everywhere.
CREATE TABLE tenant_storage (
    tenant_id           uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    retention_days      integer NOT NULL CHECK (retention_days > 0),
    store_prompts       boolean NOT NULL DEFAULT false,
    store_responses     boolean NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    updated_by          uuid REFERENCES users (id) ON DELETE SET NULL
);

-- Only the SHA-256 of an invite token is kept; the token goes out by mail.
CREATE TABLE invites (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email               text NOT NULL
                        CHECK (email = lower(email) AND length(email) <= 320),
    role                text NOT NULL
                        CHECK (role IN ('viewer', 'member', 'admin', 'owner')),
    token_hash          text NOT NULL UNIQUE,
    invited_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    accepted_at         timestamptz,
    accepted_by         uuid REFERENCES users (id) ON DELETE SET NULL
);

-- re-inviting replaces the pending invite (handlers/invites.c)
CREATE UNIQUE INDEX invites_one_pending_idx ON invites (tenant_id, email)
    WHERE accepted_at IS NULL;

-- Append-only; no foreign keys so that the trail outlives what it names.
CREATE TABLE audit_log (
    id                  bigserial PRIMARY KEY,
    tenant_id           uuid,
    actor_id            uuid,
    action              text NOT NULL,
    target              text,
    detail              jsonb NOT NULL DEFAULT '{}',
    client_ip           text,
    request_id          text,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id DESC);
