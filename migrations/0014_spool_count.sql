-- 0014_spool_count: a usage row may stand for several requests. Near the
-- cap of the module's spool (trueport_spool max_total=) the refusals of a
-- key are written once per key, kind and second with their "count"; every
-- other record is one request (count 1). Queries that count requests sum
-- it. No CHECK constraint: usage_ensure_partition attaches partitions made
-- LIKE usage_logs without its constraints; the ingester takes only counts
-- of 1 or more.
ALTER TABLE usage_logs ADD COLUMN count integer NOT NULL DEFAULT 1;
