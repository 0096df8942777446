-- 0011_list_indexes: list pages that stay cheap as the shared tables grow.
--
-- A key list's total (and the plan's key count) without visiting the
-- table: the filters a list takes (env, enabled) are in the index, so
-- counting a tenant's live keys is an index-only scan, not a heap fetch
-- per key.
CREATE INDEX api_keys_tenant_filter_idx ON api_keys (tenant_id, env, enabled)
    WHERE deleted_at IS NULL;

-- The members page in its order (joined, then the user id), so the page
-- is the index's first rows and only its users are looked up.
CREATE INDEX memberships_tenant_page_idx
    ON memberships (tenant_id, created_at, user_id);
