SELECT 1 AS "x\"" , (SELECT 1 FROM pg_authid) --"
