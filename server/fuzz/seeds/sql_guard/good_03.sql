SELECT count(*) FROM "retail"."orders"
