SELECT customer_id, first_name FROM retail.customers c
  WHERE customer_id IN (SELECT customer_id FROM retail.orders WHERE store_id = 3)
  AND EXISTS (SELECT 1 FROM retail.orders o WHERE o.customer_id = c.customer_id)
  AND (SELECT count(*) FROM retail.orders o2 WHERE o2.customer_id = c.customer_id) > 2
