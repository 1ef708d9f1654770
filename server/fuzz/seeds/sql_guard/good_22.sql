SELECT DISTINCT ON (store_id) store_id, order_id, order_date
  FROM retail.orders ORDER BY store_id, order_date DESC
