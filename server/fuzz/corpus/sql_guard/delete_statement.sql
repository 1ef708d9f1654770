DELETE FROM retail.orders
