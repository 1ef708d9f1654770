SELECT * FROM retail.orders WHERE order_id = $1
