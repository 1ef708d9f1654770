SELECT table_to_xml('tenancy.tenant_stores', true, false, '')
