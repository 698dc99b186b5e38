with lines as (
    select
        order_id,
        count(*) as line_count,
        cast(sum(quantity) as bigint) as item_count,
        sum(line_amount) as gross_amount
    from {{ ref('order_lines') }}
    group by order_id
)

select
    orders.order_id,
    orders.customer_id,
    customers.country,
    orders.ordered_at,
    orders.status,
    orders.channel,
    coalesce(lines.line_count, 0) as line_count,
    coalesce(lines.item_count, 0) as item_count,
    cast(case when orders.status = 'cancelled' then 0 else coalesce(lines.gross_amount, 0) end
        as decimal(14, 2)) as revenue
from {{ ref('stg_orders') }} as orders
left join lines using (order_id)
left join {{ ref('customers') }} as customers using (customer_id)
