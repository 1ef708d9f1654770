LISTEN orders
