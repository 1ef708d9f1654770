SELECT * FROM retail.orders o, LATERAL pg_ls_dir('.') f
