SELECT * FROM retail.orders ORDER BY pg_sleep(1)
