1; DROP TABLE retail.orders; --
