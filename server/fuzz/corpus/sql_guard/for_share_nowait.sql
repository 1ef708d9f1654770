SELECT * FROM retail.orders FOR SHARE OF orders NOWAIT
