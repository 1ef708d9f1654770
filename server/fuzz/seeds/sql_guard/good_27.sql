SELECT order_id FROM retail.orders
  WHERE order_date >= current_date - interval '30 days' AND order_date < now()
