SELECT p.product_name, e.description_embedding <=> '[0.1, 0.2, 0.3]'::vector AS distance
  FROM retail.product_description_embeddings e
  JOIN retail.products p ON p.product_id = e.product_id
  ORDER BY e.description_embedding <=> '[0.1, 0.2, 0.3]'::vector LIMIT 5
