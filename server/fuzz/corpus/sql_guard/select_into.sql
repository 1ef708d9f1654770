SELECT * INTO loot FROM retail.customers
