SELECT c.category_name, p.product_name,
  rank() OVER (PARTITION BY c.category_id ORDER BY sum(oi.quantity) DESC) AS rnk
  FROM retail.order_items oi
  JOIN retail.products p ON p.product_id = oi.product_id
  JOIN retail.categories c ON c.category_id = p.category_id
  GROUP BY c.category_id, c.category_name, p.product_name
