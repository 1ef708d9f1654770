SELECT U&'\0070g_authid'
