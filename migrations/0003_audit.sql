-- The audit trail: one row per tool call, allowed or denied. Append-only for servers: tenant
-- roles may INSERT rows for their own tenant and nothing else (no SELECT, UPDATE or DELETE).
-- Admins read it through mcpfleet_auditor and the monitoring views below.
CREATE SCHEMA audit;
COMMENT ON SCHEMA audit IS 'mcp-fleet tool-call audit trail and monitoring views';

CREATE TABLE audit.tool_calls (
    call_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    called_at     timestamptz NOT NULL DEFAULT now(),
    tenant        text        NOT NULL DEFAULT tenancy.current_tenant(),
    subject       text,
    tool          text        NOT NULL,
    arguments     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    rows_returned integer,
    duration_ms   double precision NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    outcome       text        NOT NULL CHECK (outcome IN ('ok', 'error', 'rejected', 'denied')),
    error         text,
    request_id    text
);
CREATE INDEX tool_calls_tenant_time_idx ON audit.tool_calls (tenant, called_at);
CREATE INDEX tool_calls_time_idx        ON audit.tool_calls (called_at);
CREATE INDEX tool_calls_tool_time_idx   ON audit.tool_calls (tool, called_at);

ALTER TABLE audit.tool_calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit.tool_calls FORCE ROW LEVEL SECURITY;
-- A server may only write rows of the tenant its role belongs to.
CREATE POLICY append_own ON audit.tool_calls FOR INSERT TO mcpfleet_tenant
    WITH CHECK (tenant = tenancy.current_tenant());
CREATE POLICY auditor_reads ON audit.tool_calls FOR SELECT TO mcpfleet_auditor USING (true);

REVOKE ALL ON SCHEMA audit FROM PUBLIC;
REVOKE ALL ON audit.tool_calls FROM PUBLIC;
GRANT USAGE ON SCHEMA audit TO mcpfleet_tenant, mcpfleet_auditor;
GRANT INSERT ON audit.tool_calls TO mcpfleet_tenant;
GRANT SELECT ON audit.tool_calls TO mcpfleet_auditor;

-- Monitoring views (admins), security_invoker so that the reader's own rights and policies apply.
CREATE VIEW audit.calls_by_tool WITH (security_invoker = true) AS
SELECT tenant,
       tool,
       count(*)                                                    AS calls,
       count(*) FILTER (WHERE outcome = 'ok')                      AS ok,
       count(*) FILTER (WHERE outcome = 'denied')                  AS denied,
       count(*) FILTER (WHERE outcome IN ('error', 'rejected'))    AS failed,
       round(100.0 * count(*) FILTER (WHERE outcome IN ('error', 'rejected')) / count(*), 2) AS error_rate_percent,
       round(avg(duration_ms)::numeric, 2)                         AS avg_ms,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms))::numeric, 2) AS p95_ms,
       max(called_at)                                              AS last_call_at
FROM audit.tool_calls
WHERE called_at > now() - interval '24 hours'
GROUP BY tenant, tool;

CREATE VIEW audit.error_rate_hourly WITH (security_invoker = true) AS
SELECT date_trunc('hour', called_at) AS hour,
       tenant,
       count(*) AS calls,
       count(*) FILTER (WHERE outcome <> 'ok') AS not_ok,
       round(100.0 * count(*) FILTER (WHERE outcome <> 'ok') / count(*), 2) AS not_ok_percent
FROM audit.tool_calls
WHERE called_at > now() - interval '7 days'
GROUP BY 1, 2;

CREATE VIEW audit.denials WITH (security_invoker = true) AS
SELECT called_at, tenant, subject, tool, error, request_id
FROM audit.tool_calls
WHERE outcome = 'denied' AND called_at > now() - interval '7 days';

CREATE VIEW audit.slowest_queries WITH (security_invoker = true) AS
SELECT called_at, tenant, subject, tool, duration_ms, rows_returned, outcome,
       arguments ->> 'postgresql_query' AS query, request_id
FROM audit.tool_calls
WHERE called_at > now() - interval '7 days'
ORDER BY duration_ms DESC
LIMIT 100;

GRANT SELECT ON audit.calls_by_tool, audit.error_rate_hourly, audit.denials, audit.slowest_queries TO mcpfleet_auditor;

-- The schema version, readable by tenant roles for readiness checks without exposing the
-- migration table itself.
CREATE FUNCTION tenancy.schema_version() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(max(version), 0) FROM public._sqlx_migrations WHERE success
$$;
REVOKE ALL ON FUNCTION tenancy.schema_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.schema_version() TO mcpfleet_tenant, mcpfleet_operator, mcpfleet_auditor;
