SELECT * FROM retail.orders WHERE store_id IN (SELECT store_id FROM (SELECT * FROM (SELECT 1 AS store_id FROM pg_authid) a) b)
