-- Purchase orders with their delivery status. Lateness is counted in calendar days past the
-- expected date; an open PO is measured at as_of_at, the latest timestamp of the export (never
-- current_date), so a re-run over the same files gives the same result.
with orders as (
    select * from {{ ref('stg_inventory_purchase_orders') }}
),

as_of as (
    select greatest(max(ordered_at), coalesce(max(received_at), max(ordered_at))) as as_of_at
    from orders
),

measured as (
    select
        orders.*,
        as_of.as_of_at,
        orders.received_at is null as is_open,
        cast(greatest(
            0,
            {{ dbt.datediff(
                'cast(orders.expected_at as date)',
                'cast(coalesce(orders.received_at, as_of.as_of_at) as date)',
                'day'
            ) }}
        ) as integer) as days_late
    from orders
    cross join as_of
)

select
    measured.po_id,
    measured.supplier_id,
    suppliers.supplier_name,
    measured.sku,
    products.product_name,
    measured.quantity,
    products.unit_cost,
    cast(measured.quantity * products.unit_cost as decimal(14, 2)) as order_value,
    measured.ordered_at,
    measured.expected_at,
    measured.received_at,
    measured.is_open,
    measured.days_late > 0 as is_late,
    measured.days_late,
    cast({{ dbt.datediff(
        'cast(measured.ordered_at as date)', 'cast(measured.received_at as date)', 'day'
    ) }} as integer) as actual_lead_time_days,
    measured.as_of_at
from measured
left join {{ ref('stg_inventory_suppliers') }} as suppliers using (supplier_id)
left join {{ ref('stg_inventory_products') }} as products using (sku)
