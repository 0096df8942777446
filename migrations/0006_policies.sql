-- 0006_policies: the tenants' policy rules (what the gateway checks prompts
-- against) and a per-tenant revision the gateway compares with its cached
-- rule set to know when to load the rules again.

-- Moves forward with every write to the tenant's policies (see the trigger
-- below); never goes back, not even when the last rule is deleted.
ALTER TABLE tenants
    ADD COLUMN policy_revision bigint NOT NULL DEFAULT 0
        CHECK (policy_revision >= 0);

CREATE TABLE policies (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    type                text NOT NULL
                        CHECK (type IN ('regex', 'keywords', 'pii', 'model',
                                        'limits')),
    -- the type's settings, as validated by the policy engine
    -- (ngx_trueport_module/trueport_policy.h)
    config              jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    action              text NOT NULL
                        CHECK (action IN ('block', 'redact', 'log')),
    enabled             boolean NOT NULL DEFAULT true,
    -- evaluation order: lower first, ties by creation
    priority            integer NOT NULL DEFAULT 100
                        CHECK (priority BETWEEN 0 AND 10000),
    -- {"providers": [..], "envs": [..], "key_ids": [..]}; an empty list
    -- places no restriction
    scope               jsonb NOT NULL
                        DEFAULT '{"providers": [], "envs": [], "key_ids": []}'
                        CHECK (jsonb_typeof(scope) = 'object'),
    created_by          uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- the management list and the gateway's load: a tenant's rules in
-- evaluation order
CREATE INDEX policies_tenant_order_idx
    ON policies (tenant_id, priority, created_at, id);

-- Every change to a tenant's rules moves its revision in the same
-- transaction, whoever makes it (the API, an operator's SQL, a script), so
-- the gateway can never keep rules older than the revision it was told.
CREATE FUNCTION policies_bump_revision() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE tenants SET policy_revision = policy_revision + 1
         WHERE id = OLD.tenant_id;
    END IF;
    IF TG_OP = 'INSERT'
       OR (TG_OP = 'UPDATE' AND NEW.tenant_id IS DISTINCT FROM OLD.tenant_id)
    THEN
        UPDATE tenants SET policy_revision = policy_revision + 1
         WHERE id = NEW.tenant_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER policies_revision
    AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION policies_bump_revision();
