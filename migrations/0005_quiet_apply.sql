-- apply_tenant without writes when nothing changed.
--
-- The operator calls tenancy.apply_tenant on every reconcile, including its periodic resync. Up
-- to 0004 each call rewrote the login role (ALTER ROLE, two ALTER ROLE ... SET), bumped
-- tenancy.tenants.updated_at and re-granted memberships with a NOTICE each: catalog churn, WAL and
-- log lines for every tenant on every resync. From here a call that asks for nothing new (no new
-- password, the same stores and limits, every role and grant in place) only reads and returns.
-- Anything else takes the full path of 0002/0004 unchanged.

-- Whether the tenant's roles, grants, role settings and store mapping already are what
-- apply_tenant would make them. Reads only.
CREATE FUNCTION tenancy.tenant_is_current(
    p_tenant               text,
    p_store_ids            integer[],
    p_connection_limit     integer,
    p_statement_timeout_ms integer
) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (
        SELECT g.oid AS g_oid, l.oid AS l_oid,
               format('mcp-fleet tenant %s in database %s', p_tenant, current_database()) AS marker,
               l.rolcanlogin AND NOT (l.rolsuper OR l.rolcreatedb OR l.rolcreaterole OR l.rolreplication
                                      OR l.rolbypassrls)
                   AND l.rolconnlimit = p_connection_limit AS login_ok
        FROM pg_roles g, pg_roles l
        WHERE g.rolname = 'mcpt_' || p_tenant AND l.rolname = 'mcpt_' || p_tenant || '_login'
    ),
    gw AS (SELECT oid FROM pg_roles WHERE rolname = 'mcpfleet_gateway')
    SELECT coalesce((
        SELECT r.login_ok
           AND shobj_description(r.g_oid, 'pg_authid') = r.marker
           AND shobj_description(r.l_oid, 'pg_authid') = r.marker
           -- Direct memberships: group in mcpfleet_tenant, login in group and in mcpfleet_pii,
           -- and (when the shared-mode gateway exists) the gateway in both tenant roles.
           AND EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.g_oid
                       AND m.roleid = (SELECT oid FROM pg_roles WHERE rolname = 'mcpfleet_tenant'))
           AND EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.l_oid AND m.roleid = r.g_oid)
           AND EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.l_oid
                       AND m.roleid = (SELECT oid FROM pg_roles WHERE rolname = 'mcpfleet_pii'))
           AND NOT EXISTS (SELECT FROM gw WHERE NOT EXISTS (
                   SELECT FROM pg_auth_members m WHERE m.member = gw.oid AND m.roleid = r.g_oid))
           AND NOT EXISTS (SELECT FROM gw WHERE NOT EXISTS (
                   SELECT FROM pg_auth_members m WHERE m.member = gw.oid AND m.roleid = r.l_oid))
           AND EXISTS (SELECT FROM pg_db_role_setting s
                       WHERE s.setrole = r.l_oid
                         AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
                         AND s.setconfig @> ARRAY['statement_timeout=' || p_statement_timeout_ms || 'ms',
                                                  'idle_in_transaction_session_timeout=60s'])
           AND EXISTS (SELECT FROM tenancy.tenants t
                       WHERE t.tenant_name = p_tenant AND t.group_role_oid = r.g_oid)
           AND (SELECT coalesce(array_agg(ts.store_id ORDER BY ts.store_id), '{}')
                FROM tenancy.tenant_stores ts WHERE ts.tenant_name = p_tenant)
               = (SELECT array_agg(s ORDER BY s) FROM unnest(p_store_ids) AS s)
        FROM r
    ), false)
$$;
REVOKE ALL ON FUNCTION tenancy.tenant_is_current(text, integer[], integer, integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION tenancy.apply_tenant(
    p_tenant               text,
    p_stores               text[],
    p_password_verifier    text    DEFAULT NULL,
    p_connection_limit     integer DEFAULT 20,
    p_statement_timeout_ms integer DEFAULT 5000
) RETURNS TABLE (group_role name, login_role name, store_ids integer[], created boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_stores integer[];
BEGIN
    -- Only a well-formed name reaches the check; the full path below reports a bad one.
    IF p_password_verifier IS NULL AND p_tenant ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$' THEN
        v_stores := tenancy.resolve_stores(p_stores);
        IF tenancy.tenant_is_current(p_tenant, v_stores, p_connection_limit, p_statement_timeout_ms) THEN
            RETURN QUERY SELECT ('mcpt_' || p_tenant)::name, ('mcpt_' || p_tenant || '_login')::name, v_stores, false;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT * FROM tenancy.apply_tenant_roles(p_tenant, p_stores, p_password_verifier, p_connection_limit, p_statement_timeout_ms);
    PERFORM tenancy.grant_tenant_pii(p_tenant);
END
$$;
