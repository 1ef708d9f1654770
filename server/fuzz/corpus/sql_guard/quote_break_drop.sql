'; DROP TABLE retail.orders; --
