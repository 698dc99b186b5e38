with source as (
    select * from {{ source('orders', 'raw_orders') }}
)

select
    cast(order_id as bigint) as order_id,
    cast(customer_id as bigint) as customer_id,
    cast(ordered_at as timestamp) as ordered_at,
    lower(status) as status,
    lower(channel) as channel
from source
