CALL retail.refresh()
