SELECT store_id, count(*) FROM retail.orders GROUP BY GROUPING SETS ((store_id), ())
