GRANT SELECT ON tenancy.tenant_stores TO PUBLIC
