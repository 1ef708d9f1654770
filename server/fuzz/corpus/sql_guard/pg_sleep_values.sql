SELECT * FROM (VALUES (pg_sleep(1))) v(x)
