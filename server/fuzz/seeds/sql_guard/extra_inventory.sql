SELECT pt.type_name, sum(i.stock_level) AS stock, avg(p.base_price)::numeric(10, 2) AS avg_price
FROM retail.inventory i JOIN retail.products p ON p.product_id = i.product_id
JOIN retail.product_types pt ON pt.type_id = p.type_id
WHERE i.stock_level < 10 OR p.base_price NOT BETWEEN 5 AND 500
GROUP BY CUBE (pt.type_name) ORDER BY stock ASC NULLS FIRST
