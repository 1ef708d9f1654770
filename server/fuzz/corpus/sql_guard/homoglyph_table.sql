SELECT * FROM retail.оrders
