SELECT /* revenue */ sum(total_amount) -- per item
  FROM retail.order_items
