SELECT json_build_object('store', store_name) ->> 'store' FROM retail.stores
