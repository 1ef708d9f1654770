SELECT pg_notify('orders', 'x')
