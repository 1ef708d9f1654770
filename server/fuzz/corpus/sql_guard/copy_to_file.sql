COPY retail.customers TO '/tmp/customers.csv'
