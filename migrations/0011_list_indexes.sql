-- 0011_list_indexes: list pages that stay cheap as the shared tables grow.
--
-- Each list's page index also carries the columns its filters read, so
-- the probe for a row after the page and the count of the total
-- (PAGE_TOTAL_IF_MORE in the sidecar) are index-only scans, not a heap
-- fetch per row.
DROP INDEX api_keys_tenant_idx;
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at DESC, id DESC)
    INCLUDE (env, enabled) WHERE deleted_at IS NULL;

DROP INDEX policies_tenant_order_idx;
CREATE INDEX policies_tenant_order_idx
    ON policies (tenant_id, priority, created_at, id) INCLUDE (type, enabled);

-- The members page in its order (joined, then the user id), so the page
-- is the index's first rows and only its users are looked up.
CREATE INDEX memberships_tenant_page_idx
    ON memberships (tenant_id, created_at, user_id);
