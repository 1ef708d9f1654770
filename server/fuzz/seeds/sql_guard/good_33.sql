SELECT array_agg(product_id) FROM retail.inventory
  WHERE store_id = ANY (ARRAY[1, 2, 3]) AND stock_level BETWEEN 1 AND 10
