SELECT query_to_xml('SELECT * FROM pg_authid', true, false, '')
