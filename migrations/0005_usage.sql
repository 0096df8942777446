-- 0005_usage: metered usage (partitioned by month), policy violations, the
-- model price table, and the spool ingester's checkpoints.

CREATE TABLE usage_logs (
    created_at        timestamptz NOT NULL,
    request_id        text NOT NULL,
    tenant_id         uuid NOT NULL,
    key_id            uuid,
    env               text,
    provider          text NOT NULL,
    model             text,
    path              text,
    status            integer,
    stream            boolean NOT NULL DEFAULT false,
    input_tokens      bigint,
    output_tokens     bigint,
    cached_tokens     bigint,
    reasoning_tokens  bigint,
    total_tokens      bigint,
    cost_micro_usd    bigint,
    ttfb_ms           integer,
    latency_ms        integer,
    bytes_in          bigint,
    bytes_out         bigint,
    client_ip         text,
    error_kind        text,
    completed         boolean NOT NULL DEFAULT true
) PARTITION BY RANGE (created_at);

-- the queries: a tenant's newest first, optionally by key
CREATE INDEX usage_logs_tenant_time_idx ON usage_logs (tenant_id, created_at DESC);
CREATE INDEX usage_logs_tenant_key_time_idx ON usage_logs (tenant_id, key_id, created_at DESC);

-- anything outside the monthly partitions lands here rather than failing
CREATE TABLE usage_logs_default PARTITION OF usage_logs DEFAULT;

-- Creates the month's partition of ts if missing (idempotent). The
-- ingester calls it for each month it is about to write.
CREATE FUNCTION usage_ensure_partition(ts timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m     timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name  text := 'usage_logs_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN;
    END IF;
    -- two ingesters must not race on the same month
    PERFORM pg_advisory_xact_lock(7201432);
    IF to_regclass(name) IS NOT NULL THEN
        RETURN;
    END IF;
    -- rows of that month already in the default partition would block the
    -- new partition: move them along
    EXECUTE format('CREATE TABLE %I (LIKE usage_logs INCLUDING DEFAULTS)', name);
    EXECUTE format('WITH moved AS (DELETE FROM usage_logs_default
                      WHERE created_at >= $1 AND created_at < $2 RETURNING *)
                    INSERT INTO %I SELECT * FROM moved', name)
        USING m, m + interval '1 month';
    EXECUTE format('ALTER TABLE usage_logs ATTACH PARTITION %I
                    FOR VALUES FROM (%L) TO (%L)', name, m, m + interval '1 month');
END;
$$;

SELECT usage_ensure_partition(now());
SELECT usage_ensure_partition(now() + interval '1 month');

CREATE TABLE violations (
    id          uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    request_id  text NOT NULL,
    tenant_id   uuid NOT NULL,
    key_id      uuid,
    env         text,
    provider    text,
    rule_id     uuid,
    rule_name   text,
    rule_type   text,
    action      text NOT NULL,
    detector    text,
    excerpt     text
);
CREATE INDEX violations_tenant_time_idx ON violations (tenant_id, created_at DESC);
CREATE INDEX violations_request_idx ON violations (request_id);

-- USD per million tokens, which is also micro-dollars per token
CREATE TABLE model_prices (
    provider        text NOT NULL,
    model           text NOT NULL,
    input_per_m     numeric(12, 4) NOT NULL CHECK (input_per_m >= 0),
    output_per_m    numeric(12, 4) NOT NULL CHECK (output_per_m >= 0),
    cached_per_m    numeric(12, 4) CHECK (cached_per_m >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, model)
);

INSERT INTO model_prices (provider, model, input_per_m, output_per_m, cached_per_m) VALUES
    ('openai',    'gpt-4o',                     2.50, 10.00, 1.25),
    ('openai',    'gpt-4o-mini',                0.15,  0.60, 0.075),
    ('openai',    'gpt-4.1',                    2.00,  8.00, 0.50),
    ('openai',    'gpt-4.1-mini',               0.40,  1.60, 0.10),
    ('openai',    'o3-mini',                    1.10,  4.40, 0.55),
    ('openai',    'text-embedding-3-small',     0.02,  0.00, NULL),
    ('azure',     'gpt-4o',                     2.50, 10.00, 1.25),
    ('azure',     'gpt-4o-mini',                0.15,  0.60, 0.075),
    ('anthropic', 'claude-3-5-sonnet-20241022', 3.00, 15.00, 0.30),
    ('anthropic', 'claude-3-5-haiku-20241022',  0.80,  4.00, 0.08),
    ('anthropic', 'claude-sonnet-4-20250514',   3.00, 15.00, 0.30),
    ('google',    'gemini-1.5-flash',           0.075, 0.30, 0.01875),
    ('google',    'gemini-1.5-pro',             1.25,  5.00, 0.3125),
    ('google',    'gemini-2.0-flash',           0.10,  0.40, 0.025);

-- where the ingester is in each spool file (same transaction as the rows)
CREATE TABLE spool_offsets (
    file        text PRIMARY KEY,
    "offset"    bigint NOT NULL,
    records     bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
