-- Readiness of a shared-mode server.
--
-- A shared-mode server logs in as a NOINHERIT member of mcpfleet_gateway: it holds no privilege of
-- its own until a transaction SETs ROLE to a tenant, so its readiness check ("is the schema
-- migrated far enough?") failed with "permission denied for schema tenancy" forever. The check now
-- runs as mcpfleet_gateway, which may read the schema version and nothing else in tenancy.
GRANT USAGE ON SCHEMA tenancy TO mcpfleet_gateway;
GRANT EXECUTE ON FUNCTION tenancy.schema_version() TO mcpfleet_gateway;
