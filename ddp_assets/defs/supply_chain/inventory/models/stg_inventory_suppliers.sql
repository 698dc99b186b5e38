with source as (
    select * from {{ source('inventory', 'raw_suppliers') }}
)

select
    cast(supplier_id as bigint) as supplier_id,
    trim(cast(supplier_name as varchar)) as supplier_name,
    upper(trim(cast(country as varchar))) as country,
    cast(lead_time_days as integer) as lead_time_days
from source
