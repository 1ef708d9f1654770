SET search_path = public, pg_catalog
