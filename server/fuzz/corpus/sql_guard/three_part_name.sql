SELECT * FROM postgres.tenancy.tenant_stores
