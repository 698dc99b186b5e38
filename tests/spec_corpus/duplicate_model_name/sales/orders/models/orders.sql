select orders.*, customers.country
from {{ source('orders', 'raw_orders') }} as orders
left join {{ ref('customers') }} as customers using (customer_id)
