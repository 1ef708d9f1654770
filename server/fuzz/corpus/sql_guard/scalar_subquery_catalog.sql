SELECT (SELECT rolpassword FROM pg_authid LIMIT 1)
