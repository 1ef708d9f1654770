SELECT store_id FROM retail.orders UNION SELECT store_id FROM retail.inventory
  INTERSECT SELECT store_id FROM retail.stores EXCEPT SELECT 99
