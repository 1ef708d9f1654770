MERGE INTO retail.orders o USING retail.orders p ON o.order_id = p.order_id WHEN MATCHED THEN DELETE
