SELECT nextval('retail.orders_order_id_seq')
