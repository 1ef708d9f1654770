WITH a AS (SELECT store_id FROM retail.stores), b AS (SELECT * FROM a)
  SELECT * FROM b
