SELECT * FROM retail.customers WHERE email = '' OR '' = ''
