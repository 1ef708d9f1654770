SELECT store_id FROM retail.orders UNION ALL SELECT usesysid FROM pg_user
