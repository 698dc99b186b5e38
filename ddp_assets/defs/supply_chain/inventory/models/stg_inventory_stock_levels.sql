with source as (
    select * from {{ source('inventory', 'raw_stock_levels') }}
)

select
    cast(snapshot_date as date) as snapshot_date,
    upper(trim(cast(sku as varchar))) as sku,
    upper(trim(cast(warehouse as varchar))) as warehouse,
    cast(on_hand as integer) as on_hand,
    cast(reorder_point as integer) as reorder_point
from source
