SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT * FROM
  (SELECT order_id FROM retail.orders WHERE store_id IN (SELECT store_id FROM
  retail.stores WHERE store_id IN (SELECT store_id FROM retail.inventory)))
  a) b) c) d) e WHERE ((((order_id + 1) * 2) - 3) / 4) > 0
