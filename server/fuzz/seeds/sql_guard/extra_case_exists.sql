select s.store_name, case when exists (select 1 from orders o where o.store_id = s.store_id and o.order_date > current_date - 30) then 'active' else 'quiet' end as state
from stores s where s.store_id not in (select store_id from inventory where stock_level = 0) order by 1
