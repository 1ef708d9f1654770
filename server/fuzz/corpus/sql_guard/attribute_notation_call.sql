SELECT o.pg_column_size FROM retail.orders o
