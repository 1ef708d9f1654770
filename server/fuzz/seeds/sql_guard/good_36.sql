SELECT count(DISTINCT customer_id) FROM retail.orders
  WHERE store_id IS DISTINCT FROM 2 AND store_id NOT IN (7, 8)
