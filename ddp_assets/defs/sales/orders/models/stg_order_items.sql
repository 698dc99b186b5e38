with source as (
    select * from {{ source('orders', 'raw_order_items') }}
)

select
    cast(order_id as bigint) as order_id,
    cast(line_no as integer) as line_no,
    sku,
    cast(quantity as integer) as quantity,
    cast(unit_price as decimal(10, 2)) as unit_price
from source
