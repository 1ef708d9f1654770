SELECT t.type_name, c.category_name FROM retail.product_types t
  NATURAL JOIN retail.categories c FULL OUTER JOIN retail.products p USING (type_id)
