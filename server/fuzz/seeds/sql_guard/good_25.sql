SELECT s.store_name, last.order_date FROM retail.stores s
  CROSS JOIN LATERAL (SELECT order_date FROM retail.orders o
  WHERE o.store_id = s.store_id ORDER BY order_date DESC LIMIT 1) last
