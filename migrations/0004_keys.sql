-- 0004_keys: the gateway's API keys. Only the SHA-256 of a key is kept (the
-- key itself is shown once, at creation); a deleted key keeps its row
-- (deleted_at) so the gateway can tell a revoked key from an unknown one.

CREATE TABLE api_keys (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- the key's first 8 characters ("sk-" and 5 more), to recognise it by
    prefix              text NOT NULL CHECK (length(prefix) = 8),
    -- lowercase hex SHA-256 of the whole key: what the gateway looks up
    key_hash            text NOT NULL UNIQUE
                        CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    -- one of the tenant's environments at creation time
    env                 text NOT NULL CHECK (length(env) BETWEEN 1 AND 32),
    -- requests per minute; NULL: the tenant's default, else the plan's
    rpm                 integer CHECK (rpm > 0),
    -- providers the key may call; empty: all of them
    providers           text[] NOT NULL DEFAULT '{}'
                        CHECK (providers <@ ARRAY['openai', 'anthropic',
                                                  'google', 'azure']::text[]),
    enabled             boolean NOT NULL DEFAULT true,
    expires_at          timestamptz,
    created_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- bumped by every change, delete included (a change feed for caches)
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- set by the gateway's key lookups, at most once a minute
    last_used_at        timestamptz,
    deleted_at          timestamptz
);

-- the management API's lists and the plan's key count: live keys only
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at DESC)
    WHERE deleted_at IS NULL;
