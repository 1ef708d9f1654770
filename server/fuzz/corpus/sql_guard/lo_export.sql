SELECT lo_export(1, '/tmp/x')
