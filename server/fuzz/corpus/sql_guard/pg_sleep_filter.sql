SELECT sum(total_amount) FILTER (WHERE pg_sleep(1) IS NULL) FROM retail.order_items
