-- Delivery performance per supplier, over every purchase order in the export.
--   on_time_rate: share of received POs that arrived no later than the expected day
--   fill_rate:    share of the units on POs due by as_of_at that have been received
--   performance_tier: unrated below 5 received POs, else by on_time_rate:
--                     preferred >= 0.90, standard >= 0.75, at_risk below
with purchase_orders as (
    select * from {{ ref('purchase_orders') }}
),

as_of as (
    select max(as_of_at) as as_of_at from purchase_orders
),

po_stats as (
    select
        supplier_id,
        count(*) as purchase_orders,
        count(*) filter (where not is_open) as received_orders,
        count(*) filter (where not is_open and not is_late) as on_time_orders,
        count(*) filter (where is_open) as open_orders,
        count(*) filter (where is_open and is_late) as overdue_open_orders,
        avg(days_late) filter (where not is_open and is_late) as avg_days_late,
        avg(actual_lead_time_days) filter (where not is_open) as avg_actual_lead_time_days,
        sum(quantity) filter (where expected_at <= as_of_at) as units_due,
        sum(quantity) filter (where expected_at <= as_of_at and not is_open) as units_received_due
    from purchase_orders
    group by supplier_id
),

stock_stats as (
    select
        supplier_id,
        count(*) as stock_positions,
        count(*) filter (where is_stock_out) as stock_out_positions
    from {{ ref('stock_levels') }}
    group by supplier_id
),

scored as (
    select
        suppliers.supplier_id,
        suppliers.supplier_name,
        suppliers.country,
        suppliers.lead_time_days,
        suppliers.sku_count,
        coalesce(po_stats.purchase_orders, 0) as purchase_orders,
        coalesce(po_stats.received_orders, 0) as received_orders,
        coalesce(po_stats.open_orders, 0) as open_orders,
        coalesce(po_stats.overdue_open_orders, 0) as overdue_open_orders,
        cast(po_stats.on_time_orders as double precision) / nullif(po_stats.received_orders, 0)
            as on_time_rate,
        -- avg() is numeric in PostgreSQL (round() takes numeric), double in DuckDB
        cast(round(po_stats.avg_days_late, 2) as double precision) as avg_days_late,
        cast(round(po_stats.avg_actual_lead_time_days, 2) as double precision)
            as avg_actual_lead_time_days,
        cast(po_stats.units_received_due as double precision) / nullif(po_stats.units_due, 0)
            as fill_rate,
        coalesce(stock_stats.stock_positions, 0) as stock_positions,
        coalesce(stock_stats.stock_out_positions, 0) as stock_out_positions,
        cast(stock_stats.stock_out_positions as double precision)
            / nullif(stock_stats.stock_positions, 0) as stock_out_rate,
        as_of.as_of_at
    from {{ ref('suppliers') }} as suppliers
    cross join as_of
    left join po_stats using (supplier_id)
    left join stock_stats using (supplier_id)
)

select
    *,
    case
        when received_orders < 5 then 'unrated'
        when on_time_rate >= 0.90 then 'preferred'
        when on_time_rate >= 0.75 then 'standard'
        else 'at_risk'
    end as performance_tier
from scored
