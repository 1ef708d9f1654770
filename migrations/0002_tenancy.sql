-- Tenancy: which stores each tenant owns, enforced by PostgreSQL row-level security.
--
-- Model (see DESIGN.md, "Database security model"):
--   * A tenant has a NOLOGIN group role  mcpt_<tenant>  and a LOGIN role  mcpt_<tenant>_login  in it.
--   * Every group role is a member of mcpfleet_tenant, which holds the read privileges.
--   * tenancy.tenant_stores maps tenants to the stores they own (a store has at most one owner).
--   * Policies compare each row's store_id with the stores of the CURRENT ROLE's tenant. The only
--     per-request knob, the setting mcpfleet.store_scope, intersects with that set: it can narrow
--     the view (a store manager sees one store), never widen it.
--   * Catalog tables (categories, product_types, products, embeddings) carry no store and are
--     shared read-only by every tenant.
--   * Roles are created and dropped only through the SECURITY DEFINER functions below, which the
--     operator may execute without being a superuser.

-- Cluster-wide roles, created once per cluster (several databases may share them). Two databases
-- migrating at the same moment may race to create them; the loser's error is swallowed.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('mcpfleet_tenant', 'NOLOGIN'),
        ('mcpfleet_operator', 'NOLOGIN'),
        -- Shared mode: NOINHERIT, so the gateway sees nothing until it SET ROLEs to one tenant.
        ('mcpfleet_gateway', 'NOLOGIN NOINHERIT'),
        ('mcpfleet_auditor', 'NOLOGIN')) AS v(name, options)
    LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = r.name);
        BEGIN
            EXECUTE format('CREATE ROLE %I %s', r.name, r.options);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;
COMMENT ON ROLE mcpfleet_tenant   IS 'mcp-fleet: read privileges shared by every tenant group role';
COMMENT ON ROLE mcpfleet_operator IS 'mcp-fleet: may create, update and drop tenants through tenancy.* functions';
COMMENT ON ROLE mcpfleet_gateway  IS 'mcp-fleet: shared-mode server; member of every tenant group, inherits none';
COMMENT ON ROLE mcpfleet_auditor  IS 'mcp-fleet: reads the audit trail and its monitoring views';

CREATE SCHEMA tenancy;
COMMENT ON SCHEMA tenancy IS 'mcp-fleet tenants, their roles and the stores they own';

CREATE TABLE tenancy.tenants (
    tenant_name      text PRIMARY KEY
                     CHECK (tenant_name ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    group_role       name NOT NULL UNIQUE,
    login_role       name NOT NULL UNIQUE,
    -- OID of the group role: pg_has_role() on an OID yields NULL (not an error) once the role is gone.
    group_role_oid   oid  NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    password_set_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenancy.tenant_stores (
    tenant_name text    NOT NULL REFERENCES tenancy.tenants (tenant_name) ON DELETE CASCADE,
    store_id    integer NOT NULL UNIQUE REFERENCES retail.stores (store_id),
    PRIMARY KEY (tenant_name, store_id)
);

-- A tenant role reads its own tenant's rows of the mapping and nothing else; the operator reads all.
-- Not FORCEd: the owner writes these tables through the SECURITY DEFINER functions below.
ALTER TABLE tenancy.tenants       ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy.tenant_stores ENABLE ROW LEVEL SECURITY;

CREATE POLICY own_tenant ON tenancy.tenants FOR SELECT
    USING (pg_has_role(current_user, group_role_oid, 'USAGE'));
CREATE POLICY operator_reads ON tenancy.tenants FOR SELECT TO mcpfleet_operator USING (true);
CREATE POLICY own_stores ON tenancy.tenant_stores FOR SELECT
    USING (EXISTS (SELECT FROM tenancy.tenants t WHERE t.tenant_name = tenant_stores.tenant_name));
CREATE POLICY operator_reads ON tenancy.tenant_stores FOR SELECT TO mcpfleet_operator USING (true);

-- The stores the current role may see: its tenant's stores, narrowed by mcpfleet.store_scope
-- (a comma-separated list of store ids) when that is set. SECURITY INVOKER on purpose: it must
-- evaluate current_user as the caller, and the mapping tables' own policies apply to it.
-- A malformed scope raises an error, so a bad setting fails closed.
CREATE FUNCTION tenancy.visible_store_ids() RETURNS integer[]
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(m.store_id ORDER BY m.store_id), '{}'::integer[])
    FROM tenancy.tenant_stores m
    JOIN tenancy.tenants t ON t.tenant_name = m.tenant_name
    WHERE pg_has_role(current_user, t.group_role_oid, 'USAGE')
      AND (nullif(current_setting('mcpfleet.store_scope', true), '') IS NULL
           OR m.store_id = ANY (string_to_array(current_setting('mcpfleet.store_scope', true), ',')::integer[]))
$$;

-- The tenant of the current role, or NULL.
CREATE FUNCTION tenancy.current_tenant() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.tenant_name FROM tenancy.tenants t
    WHERE pg_has_role(current_user, t.group_role_oid, 'USAGE')
    ORDER BY t.tenant_name LIMIT 1
$$;

-- Row-level security on every table that carries a store. The sub-select makes the planner
-- evaluate visible_store_ids() once per statement (an InitPlan), and keeps indexes usable; the
-- cast makes `= ANY` compare with the array's elements rather than with a sub-query's rows.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('stores', 'store_id'),
        ('customers', 'primary_store_id'),
        ('inventory', 'store_id'),
        ('orders', 'store_id'),
        ('order_items', 'store_id')) AS v(tbl, col)
    LOOP
        EXECUTE format('ALTER TABLE retail.%I ENABLE ROW LEVEL SECURITY', t.tbl);
        EXECUTE format('ALTER TABLE retail.%I FORCE ROW LEVEL SECURITY', t.tbl);
        EXECUTE format(
            'CREATE POLICY tenant_stores ON retail.%I FOR SELECT USING (%I = ANY ((SELECT tenancy.visible_store_ids())::integer[]))',
            t.tbl, t.col);
    END LOOP;
END
$$;

-- What every tenant may do: read the retail schema (RLS filters the store-bearing tables) and
-- read its own rows of the mapping. Nothing else: no writes, no functions beyond these.
REVOKE ALL ON SCHEMA retail, tenancy FROM PUBLIC;
GRANT USAGE ON SCHEMA retail, tenancy TO mcpfleet_tenant;
GRANT SELECT ON ALL TABLES IN SCHEMA retail TO mcpfleet_tenant;
GRANT SELECT ON tenancy.tenants, tenancy.tenant_stores TO mcpfleet_tenant;
REVOKE ALL ON FUNCTION tenancy.visible_store_ids(), tenancy.current_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.visible_store_ids(), tenancy.current_tenant() TO mcpfleet_tenant;

-- Tenants need no temporary tables; nobody gets them by default in this database.
DO $$ BEGIN EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database()); END $$;

GRANT USAGE ON SCHEMA retail, tenancy TO mcpfleet_operator;
GRANT SELECT ON tenancy.tenants, tenancy.tenant_stores TO mcpfleet_operator;
GRANT SELECT ON retail.stores TO mcpfleet_operator;
CREATE POLICY operator_reads ON retail.stores FOR SELECT TO mcpfleet_operator USING (true);

-- Resolves store references (ids as digits, or exact names, case-insensitive) to store ids.
-- Raises with the list of known stores when one does not exist.
CREATE FUNCTION tenancy.resolve_stores(p_stores text[]) RETURNS integer[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ref     text;
    found   integer;
    result  integer[] := '{}';
BEGIN
    IF p_stores IS NULL OR cardinality(p_stores) = 0 THEN
        RAISE EXCEPTION 'a tenant must own at least one store'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH ref IN ARRAY p_stores LOOP
        IF ref ~ '^[0-9]{1,9}$' THEN
            SELECT s.store_id INTO found FROM retail.stores s WHERE s.store_id = ref::integer;
        ELSE
            SELECT s.store_id INTO found FROM retail.stores s WHERE lower(s.store_name) = lower(btrim(ref));
        END IF;
        IF found IS NULL THEN
            RAISE EXCEPTION 'unknown store %', quote_literal(ref)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'known stores: ' || coalesce(
                          (SELECT string_agg(s.store_id || ' ' || quote_literal(s.store_name), ', ' ORDER BY s.store_id)
                           FROM retail.stores s), 'none (is the database seeded?)');
        END IF;
        IF NOT found = ANY (result) THEN
            result := result || found;
        END IF;
    END LOOP;
    RETURN result;
END
$$;

-- Creates or updates a tenant: its two roles, their limits, its password and its stores.
-- Idempotent; a NULL verifier keeps the current password. Only SCRAM verifiers are accepted, so
-- a plaintext password never reaches the server, its logs or pg_stat_statements.
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
DECLARE
    v_group   name;
    v_login   name;
    v_stores  integer[];
    v_marker  text;
    v_created boolean := false;
    v_owner   text;
    r         text;
BEGIN
    IF p_tenant IS NULL OR p_tenant !~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$' THEN
        RAISE EXCEPTION 'invalid tenant name %', coalesce(quote_literal(p_tenant), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use 1 to 40 lowercase letters, digits or dashes, starting with a letter';
    END IF;
    IF p_connection_limit IS NULL OR p_connection_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'connection limit must be between 1 and 1000, got %', p_connection_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_statement_timeout_ms IS NULL OR p_statement_timeout_ms NOT BETWEEN 100 AND 3600000 THEN
        RAISE EXCEPTION 'statement timeout must be between 100 ms and 1 hour, got % ms', p_statement_timeout_ms
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_password_verifier IS NOT NULL
       AND p_password_verifier !~ '^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$' THEN
        RAISE EXCEPTION 'the password must be given as a SCRAM-SHA-256 verifier, never in plaintext'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- One tenant change at a time in this database.
    PERFORM pg_advisory_xact_lock(hashtext('mcpfleet.tenancy'));

    v_group  := ('mcpt_' || p_tenant)::name;
    v_login  := ('mcpt_' || p_tenant || '_login')::name;
    v_marker := format('mcp-fleet tenant %s in database %s', p_tenant, current_database());
    v_stores := tenancy.resolve_stores(p_stores);

    SELECT ts.tenant_name INTO v_owner FROM tenancy.tenant_stores ts
    WHERE ts.store_id = ANY (v_stores) AND ts.tenant_name <> p_tenant LIMIT 1;
    IF v_owner IS NOT NULL THEN
        RAISE EXCEPTION 'store(s) % already belong to tenant %',
            (SELECT string_agg(ts.store_id::text, ', ') FROM tenancy.tenant_stores ts
             WHERE ts.store_id = ANY (v_stores) AND ts.tenant_name <> p_tenant),
            quote_literal(v_owner)
            USING ERRCODE = 'unique_violation',
                  HINT = 'a store belongs to at most one tenant; remove it from the other tenant first';
    END IF;

    -- Never adopt a role this database did not create: roles are shared by the whole cluster.
    FOREACH r IN ARRAY ARRAY[v_group, v_login]::text[] LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = r)
           AND coalesce(shobj_description((SELECT oid FROM pg_roles WHERE rolname = r), 'pg_authid'), '') <> v_marker THEN
            RAISE EXCEPTION 'role % exists but is not managed by mcp-fleet for this database', quote_ident(r)
                USING ERRCODE = 'duplicate_object',
                      HINT = 'drop or rename that role, or choose another tenant name';
        END IF;
    END LOOP;

    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = v_group) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN INHERIT IN ROLE mcpfleet_tenant', v_group);
        EXECUTE format('COMMENT ON ROLE %I IS %L', v_group, v_marker);
        v_created := true;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcpfleet_gateway') THEN
        EXECUTE format('GRANT %I TO mcpfleet_gateway', v_group);
    END IF;

    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = v_login) THEN
        IF p_password_verifier IS NULL THEN
            RAISE EXCEPTION 'a new tenant needs a password verifier' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        EXECUTE format('CREATE ROLE %I LOGIN INHERIT IN ROLE %I', v_login, v_group);
        EXECUTE format('COMMENT ON ROLE %I IS %L', v_login, v_marker);
        v_created := true;
    END IF;
    EXECUTE format('ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT %s',
                   v_login, p_connection_limit);
    IF p_password_verifier IS NOT NULL THEN
        EXECUTE format('ALTER ROLE %I PASSWORD %L', v_login, p_password_verifier);
    END IF;
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L',
                   v_login, current_database(), p_statement_timeout_ms || 'ms');
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET idle_in_transaction_session_timeout = %L',
                   v_login, current_database(), '60s');

    INSERT INTO tenancy.tenants AS t (tenant_name, group_role, login_role, group_role_oid)
    VALUES (p_tenant, v_group, v_login, (SELECT oid FROM pg_roles WHERE rolname = v_group))
    ON CONFLICT (tenant_name) DO UPDATE
        SET group_role_oid = excluded.group_role_oid,
            updated_at = now(),
            password_set_at = CASE WHEN p_password_verifier IS NULL THEN t.password_set_at ELSE now() END;

    DELETE FROM tenancy.tenant_stores ts WHERE ts.tenant_name = p_tenant AND NOT ts.store_id = ANY (v_stores);
    INSERT INTO tenancy.tenant_stores (tenant_name, store_id)
    SELECT p_tenant, s FROM unnest(v_stores) AS s
    ON CONFLICT DO NOTHING;

    RETURN QUERY SELECT v_group, v_login, v_stores, v_created;
END
$$;

-- Drops a tenant: ends its sessions, removes its store mapping and both roles.
-- Returns false when there was nothing to drop. Refuses roles this database does not manage.
CREATE FUNCTION tenancy.drop_tenant(p_tenant text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_group  name := ('mcpt_' || p_tenant)::name;
    v_login  name := ('mcpt_' || p_tenant || '_login')::name;
    v_marker text := format('mcp-fleet tenant %s in database %s', p_tenant, current_database());
    v_found  boolean := false;
    r        text;
BEGIN
    IF p_tenant IS NULL OR p_tenant !~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$' THEN
        RAISE EXCEPTION 'invalid tenant name %', coalesce(quote_literal(p_tenant), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('mcpfleet.tenancy'));

    DELETE FROM tenancy.tenants WHERE tenant_name = p_tenant;
    v_found := FOUND;
    FOREACH r IN ARRAY ARRAY[v_login, v_group]::text[] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r);
        IF coalesce(shobj_description((SELECT oid FROM pg_roles WHERE rolname = r), 'pg_authid'), '') <> v_marker THEN
            RAISE EXCEPTION 'role % exists but is not managed by mcp-fleet for this database', quote_ident(r)
                USING ERRCODE = 'duplicate_object';
        END IF;
        BEGIN
            PERFORM pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE a.usename = r;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'could not end the sessions of role %; they end when they disconnect', quote_ident(r);
        END;
        EXECUTE format('DROP ROLE %I', r);
        v_found := true;
    END LOOP;
    RETURN v_found;
END
$$;

REVOKE ALL ON FUNCTION tenancy.resolve_stores(text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.apply_tenant(text, text[], text, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.drop_tenant(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.resolve_stores(text[]) TO mcpfleet_operator;
GRANT EXECUTE ON FUNCTION tenancy.apply_tenant(text, text[], text, integer, integer) TO mcpfleet_operator;
GRANT EXECUTE ON FUNCTION tenancy.drop_tenant(text) TO mcpfleet_operator;
