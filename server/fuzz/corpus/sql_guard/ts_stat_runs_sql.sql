SELECT ts_stat('SELECT rolname::tsvector FROM pg_authid')
