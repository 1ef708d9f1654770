SELECT coalesce(phone, 'n/a'), nullif(email, ''), greatest(1, 2), least(3, 4),
  upper(first_name) || ' ' || lower(last_name), length(email),
  to_char(created_at, 'YYYY-MM'), date_part('dow', created_at)
  FROM retail.customers
