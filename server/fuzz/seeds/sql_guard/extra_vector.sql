SELECT p.product_name, 1 - (e.description_embedding <=> (SELECT description_embedding FROM retail.product_description_embeddings LIMIT 1)) AS similarity
FROM retail.product_description_embeddings e JOIN retail.products p USING (product_id)
ORDER BY similarity DESC LIMIT 5
