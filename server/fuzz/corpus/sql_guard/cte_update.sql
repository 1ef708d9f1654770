WITH x AS (UPDATE retail.orders SET store_id = 1 RETURNING *) SELECT * FROM x
