SELECT * FROM retail.orders FOR UPDATE
