NOTIFY orders, 'x'
