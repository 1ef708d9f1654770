SELECT CASE WHEN base_price > 100 THEN 'premium' WHEN base_price > 20 THEN 'mid'
  ELSE 'budget' END AS tier, count(*)
  FROM retail.products GROUP BY 1 HAVING count(*) > 5
