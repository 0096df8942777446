-- 0009_retention: usage rows older than their tenant's retention (storage
-- settings, capped by the plan) are deleted; monthly partitions wholly
-- older than the longest retention any plan allows are dropped, which
-- costs nothing compared with deleting their rows. The sidecar's ingester
-- thread calls usage_retention() periodically.
CREATE FUNCTION usage_retention() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    longest  integer;
    part     record;
    deleted  bigint;
BEGIN
    -- one sweep at a time across sidecars
    IF NOT pg_try_advisory_xact_lock(7201433) THEN
        RETURN 0;
    END IF;

    SELECT coalesce(max(log_retention_days), 365) INTO longest FROM plans;

    FOR part IN
        SELECT c.relname,
               to_date(substring(c.relname from 'usage_logs_(\d{4}_\d{2})$'),
                       'YYYY_MM') AS month
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'usage_logs'::regclass
           AND c.relname ~ '^usage_logs_\d{4}_\d{2}$'
    LOOP
        IF part.month + interval '1 month' < now() - longest * interval '1 day'
        THEN
            EXECUTE format('DROP TABLE %I', part.relname);
        END IF;
    END LOOP;

    WITH keep AS (
        SELECT t.id AS tenant_id,
               least(coalesce(ts.retention_days, p.log_retention_days),
                     p.log_retention_days) AS days
          FROM tenants t
          LEFT JOIN subscriptions s ON s.tenant_id = t.id AND s.status = 'active'
          JOIN plans p ON p.id = coalesce(s.plan_id, 'free')
          LEFT JOIN tenant_storage ts ON ts.tenant_id = t.id
    ), gone AS (
        DELETE FROM usage_logs u USING keep k
         WHERE u.tenant_id = k.tenant_id
           AND u.created_at < now() - k.days * interval '1 day'
        RETURNING 1
    )
    SELECT count(*) INTO deleted FROM gone;

    DELETE FROM violations v USING (
        SELECT t.id AS tenant_id,
               least(coalesce(ts.retention_days, p.log_retention_days),
                     p.log_retention_days) AS days
          FROM tenants t
          LEFT JOIN subscriptions s ON s.tenant_id = t.id AND s.status = 'active'
          JOIN plans p ON p.id = coalesce(s.plan_id, 'free')
          LEFT JOIN tenant_storage ts ON ts.tenant_id = t.id
    ) k
     WHERE v.tenant_id = k.tenant_id
       AND v.created_at < now() - k.days * interval '1 day';

    RETURN deleted;
END;
$$;
