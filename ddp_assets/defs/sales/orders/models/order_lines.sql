select
    items.order_id,
    items.line_no,
    orders.customer_id,
    cast(orders.ordered_at as date) as order_date,
    orders.status,
    items.sku,
    items.quantity,
    items.unit_price,
    cast(items.quantity * items.unit_price as decimal(12, 2)) as line_amount
from {{ ref('stg_order_items') }} as items
inner join {{ ref('stg_orders') }} as orders using (order_id)
