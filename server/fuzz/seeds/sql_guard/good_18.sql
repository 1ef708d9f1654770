SELECT product_name, ts_rank(product_search, q) AS rank
  FROM retail.products, plainto_tsquery('english', 'cordless drill') q
  WHERE product_search @@ q ORDER BY rank DESC LIMIT 10
