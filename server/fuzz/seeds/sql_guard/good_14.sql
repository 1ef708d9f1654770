SELECT round(avg(total_amount)::numeric, 2), CAST(max(order_date) AS date),
  sum(quantity)::int, '2024-01-01'::date, DATE '2024-01-01', ARRAY[1, 2]::int[]
  FROM retail.order_items JOIN retail.orders USING (order_id)
