SELECT product_name FROM retail.products
  WHERE product_name ILIKE '%drill%' OR product_description ~* 'cordless'
  OR sku SIMILAR TO 'HW-%' OR sku NOT LIKE 'X%'
