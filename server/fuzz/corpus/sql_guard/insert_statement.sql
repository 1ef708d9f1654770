INSERT INTO retail.orders (customer_id, store_id, order_date) VALUES (1, 1, now())
