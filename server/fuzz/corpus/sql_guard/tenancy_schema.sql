SELECT * FROM tenancy.tenant_stores
