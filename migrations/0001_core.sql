-- 0001_core: users, tenants and who belongs to which (the identity core
-- every other table hangs off).

CREATE TABLE users (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email               text NOT NULL UNIQUE
                        CHECK (email = lower(email) AND length(email) <= 320),
    name                text NOT NULL DEFAULT '',
    password_hash       text NOT NULL,
    is_platform_admin   boolean NOT NULL DEFAULT false,
    -- tokens with iat below this (unix seconds) are refused: set on a
    -- password change
    tokens_valid_after  bigint NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug                text NOT NULL UNIQUE
                        CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'),
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'suspended')),
    status_reason       text,
    environments        text[] NOT NULL
                        DEFAULT '{production,staging,development}',
    created_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role                text NOT NULL
                        CHECK (role IN ('viewer', 'member', 'admin', 'owner')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);

CREATE INDEX memberships_user_idx ON memberships (user_id);
