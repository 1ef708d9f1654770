SELECT c.first_name, c.last_name, c.email, count(o.order_id) AS orders
FROM retail.customers c LEFT JOIN retail.orders o ON o.customer_id = c.customer_id
WHERE c.created_at AT TIME ZONE 'UTC' > now() - interval '2 years'
GROUP BY c.customer_id, c.first_name, c.last_name, c.email HAVING count(o.order_id) >= 1
ORDER BY orders DESC, c.last_name ASC LIMIT 20
