SELECT x$a$ FROM retail.orders, (SELECT * FROM pg_authid) p -- $a$
