TRUNCATE retail.orders
