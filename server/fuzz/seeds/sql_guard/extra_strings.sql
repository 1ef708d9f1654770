SELECT substring(product_name FROM 1 FOR 10), position('a' IN product_name), trim(BOTH ' ' FROM sku),
       overlay(sku PLACING 'XX' FROM 1 FOR 2), E'tab\there', $$it's$$, 'a' || 'b' COLLATE "C"
FROM retail.products WHERE product_name SIMILAR TO '%(Drill|Saw)%' LIMIT 5
