SELECT jsonb_build_object('store', s.store_name, 'online', s.is_online) -> 'store',
       (ARRAY[1, 2, 3])[2:3], array_length(ARRAY[1, 2], 1), to_json(s.store_name)::text
FROM retail.stores s WHERE s.is_online IS NOT TRUE
