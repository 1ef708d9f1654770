SELECT * FROM U&"\0070g_authid"
