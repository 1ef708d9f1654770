SELECT $a$ $$ $a$, (SELECT 1 FROM pg_authid) --$$
