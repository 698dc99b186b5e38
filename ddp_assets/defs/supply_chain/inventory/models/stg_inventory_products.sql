with source as (
    select * from {{ source('inventory', 'raw_products') }}
)

select
    upper(trim(cast(sku as varchar))) as sku,
    trim(cast(product_name as varchar)) as product_name,
    lower(trim(cast(category as varchar))) as category,
    cast(supplier_id as bigint) as supplier_id,
    cast(unit_cost as decimal(10, 2)) as unit_cost
from source
