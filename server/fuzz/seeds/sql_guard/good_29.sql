SELECT pg_typeof(base_price), pg_size_pretty(1024::bigint), pg_catalog.now()
  FROM retail.products LIMIT 1
