with source as (
    select * from {{ source('inventory', 'raw_purchase_orders') }}
)

select
    cast(po_id as bigint) as po_id,
    cast(supplier_id as bigint) as supplier_id,
    upper(trim(cast(sku as varchar))) as sku,
    cast(quantity as integer) as quantity,
    cast(ordered_at as timestamp) as ordered_at,
    cast(expected_at as timestamp) as expected_at,
    cast(received_at as timestamp) as received_at
from source
