WITH x AS (SELECT 1) DELETE FROM retail.orders
