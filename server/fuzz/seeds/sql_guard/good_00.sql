SELECT store_name FROM retail.stores
