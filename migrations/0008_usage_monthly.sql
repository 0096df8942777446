-- 0008_usage_monthly: requests per tenant and month, kept by the spool
-- ingester in the same transaction as the rows it copies, so the gateway's
-- quota check (in the key resolve answer) is one indexed row, not a count
-- over a month of usage_logs.
CREATE TABLE usage_monthly (
    tenant_id   uuid NOT NULL,
    month       date NOT NULL,
    requests    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, month)
);

INSERT INTO usage_monthly (tenant_id, month, requests)
SELECT tenant_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date,
       count(*)
  FROM usage_logs GROUP BY 1, 2;
