CREATE TABLE loot AS SELECT * FROM retail.customers
