SELECT 1 OPERATOR(pg_catalog.+) 1
