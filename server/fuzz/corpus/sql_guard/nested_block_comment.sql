SELECT 1 /* /* */ ' */ , (SELECT rolpassword FROM pg_authid) --'
