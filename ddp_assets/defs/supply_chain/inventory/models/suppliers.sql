-- The supplier master with the size of each supplier's assortment.
with assortment as (
    select
        supplier_id,
        count(distinct sku) as sku_count
    from {{ ref('stg_inventory_products') }}
    group by supplier_id
)

select
    suppliers.supplier_id,
    suppliers.supplier_name,
    suppliers.country,
    suppliers.lead_time_days,
    coalesce(assortment.sku_count, 0) as sku_count
from {{ ref('stg_inventory_suppliers') }} as suppliers
left join assortment using (supplier_id)
