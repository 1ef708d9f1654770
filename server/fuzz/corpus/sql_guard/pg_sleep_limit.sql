SELECT * FROM retail.orders LIMIT (SELECT 1 FROM pg_sleep(5))
