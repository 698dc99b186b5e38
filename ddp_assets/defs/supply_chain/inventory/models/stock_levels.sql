-- Current stock: the latest snapshot of every SKU and warehouse (a SKU that dropped out of the
-- latest weekly snapshot keeps its last known level; snapshot_date tells how old it is).
with ranked as (
    select
        *,
        row_number() over (partition by sku, warehouse order by snapshot_date desc) as recency
    from {{ ref('stg_inventory_stock_levels') }}
),

latest as (
    select * from ranked where recency = 1
)

select
    latest.sku,
    latest.warehouse,
    latest.snapshot_date,
    latest.on_hand,
    latest.reorder_point,
    latest.on_hand = 0 as is_stock_out,
    latest.on_hand <= latest.reorder_point as is_below_reorder_point,
    products.product_name,
    products.category,
    products.unit_cost,
    cast(latest.on_hand * products.unit_cost as decimal(14, 2)) as stock_value,
    products.supplier_id,
    suppliers.supplier_name,
    suppliers.lead_time_days
from latest
left join {{ ref('stg_inventory_products') }} as products using (sku)
left join {{ ref('stg_inventory_suppliers') }} as suppliers using (supplier_id)
