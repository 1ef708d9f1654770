SELECT CAST('pg_sleep' AS regproc)
