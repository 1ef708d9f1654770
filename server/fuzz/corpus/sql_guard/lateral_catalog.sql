SELECT * FROM retail.orders o JOIN LATERAL (SELECT * FROM pg_roles) r ON true
