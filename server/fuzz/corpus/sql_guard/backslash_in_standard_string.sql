SELECT '\' , (SELECT 1 FROM pg_authid) --'
