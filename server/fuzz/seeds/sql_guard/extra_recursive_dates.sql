WITH RECURSIVE months(m) AS (SELECT date_trunc('month', current_date) - interval '11 months'
  UNION ALL SELECT m + interval '1 month' FROM months WHERE m < date_trunc('month', current_date))
SELECT to_char(m, 'YYYY-MM') AS month, (SELECT count(*) FROM retail.orders o WHERE date_trunc('month', o.order_date) = m) AS orders
FROM months ORDER BY m
