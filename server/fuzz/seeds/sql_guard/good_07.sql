SELECT EXTRACT(YEAR FROM order_date) AS year, store_id, count(*)
  FROM retail.orders GROUP BY ROLLUP (EXTRACT(YEAR FROM order_date), store_id)
