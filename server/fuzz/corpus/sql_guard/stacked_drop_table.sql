SELECT * FROM retail.orders WHERE store_id = 1; DROP TABLE retail.orders; --
