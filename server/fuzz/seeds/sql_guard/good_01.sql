select count(*) from orders
