WITH monthly AS (
  SELECT date_trunc('month', o.order_date) AS month, sum(oi.total_amount) AS revenue
  FROM retail.orders o JOIN retail.order_items oi USING (order_id)
  GROUP BY 1)
  SELECT month, revenue, revenue - lag(revenue) OVER (ORDER BY month) AS change
  FROM monthly ORDER BY month
