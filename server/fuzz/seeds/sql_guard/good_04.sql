SELECT s.store_name, sum(oi.total_amount) AS revenue
  FROM retail.orders o
  JOIN retail.order_items oi ON oi.order_id = o.order_id
  JOIN retail.stores s ON s.store_id = o.store_id
  GROUP BY s.store_name ORDER BY revenue DESC LIMIT 10
