#!/usr/bin/env bash
# Prints what the demo database holds and how to connect to it.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
eval "$("$here/scripts/pg-cluster.sh" env)"
psql=/usr/lib/postgresql/15/bin/psql
echo
echo "== Sample data (schema retail) =="
"$psql" -q -P footer=off -c "
  SELECT s.store_id, s.store_name, s.is_online,
         (SELECT count(*) FROM retail.customers c WHERE c.primary_store_id = s.store_id) AS customers,
         (SELECT count(*) FROM retail.orders o WHERE o.store_id = s.store_id) AS orders,
         (SELECT round(sum(total_amount)) FROM retail.order_items i WHERE i.store_id = s.store_id) AS revenue
  FROM retail.stores s ORDER BY s.store_id"
"$psql" -q -P footer=off -c "
  SELECT c.category_name, count(*) AS products, round(avg(p.base_price), 2) AS avg_price
  FROM retail.products p JOIN retail.categories c USING (category_id) GROUP BY 1 ORDER BY 1"
echo "== Connect =="
echo "  eval \"\$(scripts/pg-cluster.sh env)\" && psql"
echo "  DATABASE_URL=$(echo "$DATABASE_URL" | sed -E 's#(://[^:]+:)[^@]+@#\1***@#')   (password: scripts/pg-cluster.sh env)"
echo "  Stop with: make demo-down"
