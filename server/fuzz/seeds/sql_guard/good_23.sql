SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total_amount) AS median,
  count(*) FILTER (WHERE discount_percent > 0) AS discounted,
  string_agg(DISTINCT store_id::text, ',' ORDER BY store_id::text) AS stores
  FROM retail.order_items
