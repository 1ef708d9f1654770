-- Two login roles per tenant, so that a password rotation never refuses a pod that still runs
-- with the old password.
--
-- Up to 0006 a rotation set the new password on mcpt_<tenant>_login at once. A pod of the old
-- rollout that opened a pooled connection after that was refused ("password authentication
-- failed") until it was replaced. From here a tenant has two login roles, mcpt_<tenant>_login and
-- mcpt_<tenant>_login_b, both LOGIN INHERIT members of the group role (row-level security follows
-- the group, so both see exactly the tenant's stores) and of mcpfleet_pii. A rotation:
--   1. sets the new password on the login role not in use (apply_tenant's p_login) and enables it;
--   2. the operator points the Secret and the server config at it, and the pods roll;
--   3. once no pod runs the old rollout and no session uses the old role, retire_other_login
--      makes the old role NOLOGIN with no password: the old password stops working. Sessions
--      that outlive the rollout by long (someone else holding the old password) do not keep it
--      alive: with p_force they are ended and the role retired all the same.
-- tenancy.tenants.login_role names the role in use.

-- The tenant's two login roles; the first is the one every tenant has had since 0002.
CREATE FUNCTION tenancy.login_roles(p_tenant text) RETURNS name[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY[('mcpt_' || p_tenant || '_login')::name, ('mcpt_' || p_tenant || '_login_b')::name]
$$;

-- Refuses a login name that is not one of the tenant's two.
CREATE FUNCTION tenancy.check_login(p_tenant text, p_login text) RETURNS name
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT coalesce(p_login::name = ANY (tenancy.login_roles(p_tenant)), false) THEN
        RAISE EXCEPTION 'login role % is not one of tenant %''s login roles %',
            coalesce(quote_ident(p_login), 'NULL'), quote_literal(p_tenant), tenancy.login_roles(p_tenant)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_login::name;
END
$$;

DROP FUNCTION tenancy.apply_tenant(text, text[], text, integer, integer);
DROP FUNCTION tenancy.apply_tenant_roles(text, text[], text, integer, integer);
DROP FUNCTION tenancy.tenant_is_current(text, integer[], integer, integer);

-- As in 0005, for the login role p_login.
CREATE FUNCTION tenancy.tenant_is_current(
    p_tenant               text,
    p_store_ids            integer[],
    p_connection_limit     integer,
    p_statement_timeout_ms integer,
    p_login                name
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
        WHERE g.rolname = 'mcpt_' || p_tenant AND l.rolname = p_login
    ),
    gw AS (SELECT oid FROM pg_roles WHERE rolname = 'mcpfleet_gateway')
    SELECT coalesce((
        SELECT r.login_ok
           AND shobj_description(r.g_oid, 'pg_authid') = r.marker
           AND shobj_description(r.l_oid, 'pg_authid') = r.marker
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
                       WHERE t.tenant_name = p_tenant AND t.group_role_oid = r.g_oid AND t.login_role = p_login)
           AND (SELECT coalesce(array_agg(ts.store_id ORDER BY ts.store_id), '{}')
                FROM tenancy.tenant_stores ts WHERE ts.tenant_name = p_tenant)
               = (SELECT array_agg(s ORDER BY s) FROM unnest(p_store_ids) AS s)
        FROM r
    ), false)
$$;
REVOKE ALL ON FUNCTION tenancy.tenant_is_current(text, integer[], integer, integer, name) FROM PUBLIC;

-- As 0002's apply_tenant plus 0004's PII grants, for the login role p_login, which it (re-)enables.
CREATE FUNCTION tenancy.apply_tenant_roles(
    p_tenant               text,
    p_stores               text[],
    p_password_verifier    text,
    p_connection_limit     integer,
    p_statement_timeout_ms integer,
    p_login                name
) RETURNS TABLE (group_role name, login_role name, store_ids integer[], created boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_group   name;
    v_stores  integer[];
    v_marker  text;
    v_created boolean := false;
    v_owner   text;
    r         text;
BEGIN
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

    PERFORM pg_advisory_xact_lock(hashtext('mcpfleet.tenancy'));

    v_group  := ('mcpt_' || p_tenant)::name;
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
    FOREACH r IN ARRAY (ARRAY[v_group] || tenancy.login_roles(p_tenant))::text[] LOOP
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

    -- A missing or retired login role has no password the caller's Secret could know: ask for it.
    IF p_password_verifier IS NULL
       AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = p_login AND rolcanlogin) THEN
        RAISE EXCEPTION 'login role % needs a password verifier', quote_ident(p_login)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = p_login) THEN
        EXECUTE format('CREATE ROLE %I LOGIN INHERIT IN ROLE %I', p_login, v_group);
        EXECUTE format('COMMENT ON ROLE %I IS %L', p_login, v_marker);
        v_created := true;
    END IF;
    EXECUTE format('GRANT %I TO %I', v_group, p_login);
    EXECUTE format('ALTER ROLE %I LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT %s',
                   p_login, p_connection_limit);
    IF p_password_verifier IS NOT NULL THEN
        EXECUTE format('ALTER ROLE %I PASSWORD %L', p_login, p_password_verifier);
    END IF;
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L',
                   p_login, current_database(), p_statement_timeout_ms || 'ms');
    EXECUTE format('ALTER ROLE %I IN DATABASE %I SET idle_in_transaction_session_timeout = %L',
                   p_login, current_database(), '60s');
    EXECUTE format('GRANT mcpfleet_pii TO %I', p_login);
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'mcpfleet_gateway') THEN
        EXECUTE format('GRANT %I TO mcpfleet_gateway', v_group);
        EXECUTE format('GRANT %I TO mcpfleet_gateway', p_login);
    END IF;

    INSERT INTO tenancy.tenants AS t (tenant_name, group_role, login_role, group_role_oid)
    VALUES (p_tenant, v_group, p_login, (SELECT oid FROM pg_roles WHERE rolname = v_group))
    ON CONFLICT (tenant_name) DO UPDATE
        SET group_role_oid = excluded.group_role_oid,
            login_role = excluded.login_role,
            updated_at = now(),
            password_set_at = CASE WHEN p_password_verifier IS NULL THEN t.password_set_at ELSE now() END;

    DELETE FROM tenancy.tenant_stores ts WHERE ts.tenant_name = p_tenant AND NOT ts.store_id = ANY (v_stores);
    INSERT INTO tenancy.tenant_stores (tenant_name, store_id)
    SELECT p_tenant, s FROM unnest(v_stores) AS s
    ON CONFLICT DO NOTHING;

    RETURN QUERY SELECT v_group, p_login, v_stores, v_created;
END
$$;
REVOKE ALL ON FUNCTION tenancy.apply_tenant_roles(text, text[], text, integer, integer, name) FROM PUBLIC;

-- Creates or updates a tenant; p_login (default: the first login role) is the login role its
-- servers use. Only reads when nothing would change (0005).
CREATE FUNCTION tenancy.apply_tenant(
    p_tenant               text,
    p_stores               text[],
    p_password_verifier    text    DEFAULT NULL,
    p_connection_limit     integer DEFAULT 20,
    p_statement_timeout_ms integer DEFAULT 5000,
    p_login                text    DEFAULT NULL
) RETURNS TABLE (group_role name, login_role name, store_ids integer[], created boolean)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_stores integer[];
    v_login  name;
BEGIN
    IF p_tenant IS NULL OR p_tenant !~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$' THEN
        RAISE EXCEPTION 'invalid tenant name %', coalesce(quote_literal(p_tenant), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use 1 to 40 lowercase letters, digits or dashes, starting with a letter';
    END IF;
    v_login := tenancy.check_login(p_tenant, coalesce(p_login, (tenancy.login_roles(p_tenant))[1]));
    IF p_password_verifier IS NULL THEN
        v_stores := tenancy.resolve_stores(p_stores);
        IF tenancy.tenant_is_current(p_tenant, v_stores, p_connection_limit, p_statement_timeout_ms, v_login) THEN
            RETURN QUERY SELECT ('mcpt_' || p_tenant)::name, v_login, v_stores, false;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT * FROM tenancy.apply_tenant_roles(
        p_tenant, p_stores, p_password_verifier, p_connection_limit, p_statement_timeout_ms, v_login);
END
$$;
REVOKE ALL ON FUNCTION tenancy.apply_tenant(text, text[], text, integer, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.apply_tenant(text, text[], text, integer, integer, text) TO mcpfleet_operator;

-- Retires the tenant's login role other than p_login: NOLOGIN and no password, so its password
-- stops working. Call it once no pod runs with that role any more. Returns
--   'retired' when it did so now (with p_force, after ending the role's open sessions),
--   'busy'    when sessions of that role are still open and p_force is false (nothing changed),
--   'none'    when there was nothing to retire (only reads).
CREATE FUNCTION tenancy.retire_other_login(p_tenant text, p_login text, p_force boolean DEFAULT false) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_login  name := tenancy.check_login(p_tenant, p_login);
    v_other  name;
    v_marker text := format('mcp-fleet tenant %s in database %s', p_tenant, current_database());
BEGIN
    SELECT l INTO v_other FROM unnest(tenancy.login_roles(p_tenant)) AS l WHERE l <> v_login;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = v_other AND rolcanlogin) THEN
        RETURN 'none';
    END IF;
    IF coalesce(shobj_description((SELECT oid FROM pg_roles WHERE rolname = v_other), 'pg_authid'), '') <> v_marker THEN
        RAISE EXCEPTION 'role % exists but is not managed by mcp-fleet for this database', quote_ident(v_other)
            USING ERRCODE = 'duplicate_object';
    END IF;
    IF EXISTS (SELECT FROM pg_stat_activity a WHERE a.usename = v_other) AND NOT p_force THEN
        RETURN 'busy';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('mcpfleet.tenancy'));
    EXECUTE format('ALTER ROLE %I NOLOGIN PASSWORD NULL', v_other);
    BEGIN
        PERFORM pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE a.usename = v_other;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'could not end the sessions of role %; they end when they disconnect', quote_ident(v_other);
    END;
    RETURN 'retired';
END
$$;
REVOKE ALL ON FUNCTION tenancy.retire_other_login(text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.retire_other_login(text, text, boolean) TO mcpfleet_operator;

-- As in 0002, for both login roles.
CREATE OR REPLACE FUNCTION tenancy.drop_tenant(p_tenant text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_group  name := ('mcpt_' || p_tenant)::name;
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
    FOREACH r IN ARRAY (tenancy.login_roles(p_tenant) || v_group)::text[] LOOP
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
