SELECT order_date, sum(total_amount) OVER (PARTITION BY store_id ORDER BY order_date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS rolling
FROM retail.order_items JOIN retail.orders USING (order_id, store_id) ORDER BY order_date NULLS LAST LIMIT 20
