SELECT * FROM retail.orders; -- x
DELETE FROM retail.orders
