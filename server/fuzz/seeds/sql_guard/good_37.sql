WITH orders AS (SELECT * FROM retail.orders WHERE store_id = 1)
  SELECT count(*) FROM orders
