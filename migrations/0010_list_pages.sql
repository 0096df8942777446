-- 0010_list_pages: the key list pages newest first with the id as the
-- tie-break; with the id in the index the page is the index's first rows
-- (a Limit over an Index Scan) instead of a sort of every live key the
-- tenant has. It still serves the plan's key count (tenant_id leads).
DROP INDEX api_keys_tenant_idx;
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
