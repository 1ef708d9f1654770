SELECT * FROM retail.orders ORDER BY order_date DESC LIMIT 20 OFFSET 40
