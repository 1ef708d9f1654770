SELECT tenancy.apply_tenant('x', ARRAY[1], 'v', 1, 1)
