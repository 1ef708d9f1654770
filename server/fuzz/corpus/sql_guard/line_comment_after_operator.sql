SELECT 1 <-- 'x
 2, (SELECT rolpassword FROM pg_authid) --'
