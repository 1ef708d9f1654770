SELECT product_id, description_embedding <-> '[1,2,3]' AS l2,
  description_embedding <#> '[1,2,3]' AS inner_product
  FROM retail.product_description_embeddings ORDER BY 2 LIMIT 3
