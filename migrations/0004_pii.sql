-- Customer PII (email, phone) is withheld from tenant roles by column privileges. Callers whose
-- role grants PII read the raw columns through role mcpfleet_pii; everyone else reads
-- retail.customers_masked, the same rows with masked values. The server points non-PII callers'
-- queries at the view and runs them as the tenant's group role, which PostgreSQL itself refuses
-- raw email and phone — so a query the rewrite missed fails instead of leaking.

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES ('mcpfleet_pii'), ('mcpfleet_masker')) AS v(name) LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = r.name);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r.name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;
COMMENT ON ROLE mcpfleet_pii IS 'mcp-fleet: may read customer email and phone (granted to tenant login roles)';
COMMENT ON ROLE mcpfleet_masker IS 'mcp-fleet: owns retail.customers_masked; not a superuser, so row-level security applies through it';

REVOKE SELECT ON retail.customers FROM mcpfleet_tenant;
GRANT SELECT (customer_id, first_name, last_name, primary_store_id, created_at) ON retail.customers TO mcpfleet_tenant;
GRANT SELECT (email, phone) ON retail.customers TO mcpfleet_pii;

-- "olivia.smith12@example.com" -> "o***@example.com"
CREATE FUNCTION tenancy.mask_email(p text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p IS NULL THEN NULL
                WHEN position('@' IN p) > 1 THEN left(p, 1) || '***' || substr(p, position('@' IN p))
                ELSE '***' END
$$;

-- "(206) 555-0123" -> "(206) ***-**23"
CREATE FUNCTION tenancy.mask_phone(p text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p IS NULL THEN NULL
                WHEN length(p) > 6 THEN regexp_replace(left(p, length(p) - 2), '[0-9]', '*', 'g') || right(p, 2)
                ELSE '***' END
$$;

-- Owned by mcpfleet_masker (below), which may read every column but is neither a superuser nor
-- BYPASSRLS: the table's policies still apply, and they test current_user — the querying tenant.
CREATE VIEW retail.customers_masked WITH (security_barrier = true) AS
SELECT customer_id,
       first_name,
       last_name,
       tenancy.mask_email(email) AS email,
       tenancy.mask_phone(phone) AS phone,
       primary_store_id,
       created_at
FROM retail.customers;
COMMENT ON VIEW retail.customers_masked IS 'retail.customers with email and phone masked, for callers without PII access';

GRANT USAGE ON SCHEMA retail, tenancy TO mcpfleet_masker;
GRANT SELECT ON retail.customers TO mcpfleet_masker;
GRANT SELECT ON tenancy.tenants, tenancy.tenant_stores TO mcpfleet_masker;
GRANT EXECUTE ON FUNCTION tenancy.visible_store_ids(), tenancy.mask_email(text), tenancy.mask_phone(text) TO mcpfleet_masker;
ALTER VIEW retail.customers_masked OWNER TO mcpfleet_masker;
GRANT SELECT ON retail.customers_masked TO mcpfleet_tenant;

-- Existing tenants' login roles read PII; their group roles do not.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT login_role FROM tenancy.tenants LOOP
        EXECUTE format('GRANT mcpfleet_pii TO %I', t.login_role);
    END LOOP;
END
$$;

-- apply_tenant, as in 0002, plus: the login role gets mcpfleet_pii, and the shared-mode gateway
-- may switch to the login role (PII callers) as well as to the group role.
CREATE OR REPLACE FUNCTION tenancy.grant_tenant_pii(p_tenant text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_login name;
BEGIN
    SELECT t.login_role INTO v_login FROM tenancy.tenants t WHERE t.tenant_name = p_tenant;
    IF v_login IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('GRANT mcpfleet_pii TO %I', v_login);
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcpfleet_gateway') THEN
        EXECUTE format('GRANT %I TO mcpfleet_gateway', v_login);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION tenancy.grant_tenant_pii(text) FROM PUBLIC;

ALTER FUNCTION tenancy.apply_tenant(text, text[], text, integer, integer) RENAME TO apply_tenant_roles;
REVOKE ALL ON FUNCTION tenancy.apply_tenant_roles(text, text[], text, integer, integer) FROM mcpfleet_operator;

CREATE FUNCTION tenancy.apply_tenant(
    p_tenant               text,
    p_stores               text[],
    p_password_verifier    text    DEFAULT NULL,
    p_connection_limit     integer DEFAULT 20,
    p_statement_timeout_ms integer DEFAULT 5000
) RETURNS TABLE (group_role name, login_role name, store_ids integer[], created boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT * FROM tenancy.apply_tenant_roles(p_tenant, p_stores, p_password_verifier, p_connection_limit, p_statement_timeout_ms);
    PERFORM tenancy.grant_tenant_pii(p_tenant);
END
$$;
REVOKE ALL ON FUNCTION tenancy.apply_tenant(text, text[], text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.apply_tenant(text, text[], text, integer, integer) TO mcpfleet_operator;
