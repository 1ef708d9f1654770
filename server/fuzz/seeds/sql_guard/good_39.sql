SELECT * FROM retail.orders WHERE store_id = 1 OR 1 = 1
