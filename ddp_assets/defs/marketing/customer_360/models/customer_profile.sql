-- One row per customer of the customer dimension. Recency is measured against as_of_at, the
-- latest order timestamp in the data (never current_date), so results are reproducible.
with orders as (
    select * from {{ ref('orders') }}
),

as_of as (
    select max(ordered_at) as as_of_at from orders
),

order_stats as (
    select
        orders.customer_id,
        count(*) filter (where orders.status <> 'cancelled') as lifetime_orders,
        count(*) filter (where orders.status = 'cancelled') as cancelled_orders,
        count(*) filter (where orders.status = 'returned') as returned_orders,
        cast(sum(orders.revenue) as decimal(14, 2)) as lifetime_revenue,
        min(orders.ordered_at) filter (where orders.status <> 'cancelled') as first_order_at,
        max(orders.ordered_at) filter (where orders.status <> 'cancelled') as last_order_at,
        count(*) filter (
            where orders.status <> 'cancelled'
                and orders.ordered_at > as_of.as_of_at - interval '90 days'
        ) as orders_last_90_days
    from orders
    cross join as_of
    group by orders.customer_id
)

select
    customers.customer_id,
    customers.email,
    customers.country,
    customers.segment,
    customers.signup_date,
    cast(greatest(
        0, {{ dbt.datediff('customers.signup_date', 'cast(as_of.as_of_at as date)', 'day') }}
    ) as integer) as tenure_days,
    coalesce(order_stats.lifetime_orders, 0) as lifetime_orders,
    coalesce(order_stats.cancelled_orders, 0) as cancelled_orders,
    coalesce(order_stats.returned_orders, 0) as returned_orders,
    coalesce(order_stats.lifetime_revenue, cast(0 as decimal(14, 2))) as lifetime_revenue,
    cast(order_stats.lifetime_revenue / nullif(order_stats.lifetime_orders, 0)
        as decimal(14, 2)) as avg_order_value,
    order_stats.first_order_at,
    order_stats.last_order_at,
    cast({{ dbt.datediff(
        'cast(order_stats.last_order_at as date)', 'cast(as_of.as_of_at as date)', 'day'
    ) }} as integer) as days_since_last_order,
    coalesce(order_stats.orders_last_90_days, 0) as orders_last_90_days,
    coalesce(usage.engagement_tier, 'dormant') as engagement_tier,
    coalesce(usage.active_days, 0) as active_days_30d,
    coalesce(usage.features_used, 0) as features_used_30d,
    usage.last_seen_at,
    as_of.as_of_at
from {{ ref('customers') }} as customers
cross join as_of
left join order_stats using (customer_id)
left join {{ ref('customer_usage') }} as usage using (customer_id)
