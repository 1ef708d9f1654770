UPDATE retail.orders SET store_id = 2
