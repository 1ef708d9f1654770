-- The audit trail's insert policy asks for the writer's tenant once per statement, not once per
-- row. tenancy.current_tenant() is a SQL function with its own search_path, so PostgreSQL cannot
-- inline it: written bare in WITH CHECK it ran for every row of the server's batched INSERT (a
-- function call, a search_path change and a scan of tenancy.tenants each). As a sub-select it is
-- an InitPlan, evaluated once per statement, like visible_store_ids() in the retail policies.
-- Same rule, same roles: a server may only write rows of the tenant its role belongs to.
ALTER POLICY append_own ON audit.tool_calls
    WITH CHECK (tenant = (SELECT tenancy.current_tenant()));
