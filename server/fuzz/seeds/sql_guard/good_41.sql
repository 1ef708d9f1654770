SELECT * FROM retail.orders -- ; DROP TABLE retail.orders
