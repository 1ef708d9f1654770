SELECT d::date AS day, count(o.order_id)
  FROM generate_series('2024-01-01'::date, '2024-01-31'::date, interval '1 day') AS d
  LEFT JOIN retail.orders o ON o.order_date = d::date
  GROUP BY 1 ORDER BY 1
