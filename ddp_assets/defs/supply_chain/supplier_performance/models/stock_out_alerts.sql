-- SKU x warehouse positions that are out of stock, or whose stock covers fewer days of demand
-- than the supplier needs to deliver a replenishment.
--   demand:   units sold (cancelled orders excluded) over the last 28 days of order data,
--             ending at the latest order date (never current_date), split evenly over the
--             warehouses that stock the SKU
--   severity: critical when out of stock or cover below half the lead time, else warning
with demand_window as (
    select
        max(order_date) - 27 as window_start,
        max(order_date) as window_end
    from {{ ref('order_lines') }}
),

sku_demand as (
    select
        lines.sku,
        cast(sum(lines.quantity) as bigint) as units_sold
    from {{ ref('order_lines') }} as lines
    cross join demand_window
    where lines.order_date between demand_window.window_start and demand_window.window_end
        and lines.status <> 'cancelled'
    group by lines.sku
),

inbound as (
    select
        sku,
        cast(sum(quantity) as bigint) as open_po_quantity
    from {{ ref('purchase_orders') }}
    where is_open
    group by sku
),

positions as (
    select
        stock.*,
        count(*) over (partition by stock.sku) as warehouses_stocking
    from {{ ref('stock_levels') }} as stock
),

measured as (
    select
        positions.sku,
        positions.warehouse,
        positions.product_name,
        positions.category,
        positions.supplier_id,
        suppliers.supplier_name,
        suppliers.lead_time_days,
        positions.snapshot_date,
        positions.on_hand,
        positions.reorder_point,
        -- numeric in PostgreSQL (exact division, and round() takes numeric), double in DuckDB
        coalesce(sku_demand.units_sold, 0) / 28.0 as sku_daily_demand,
        coalesce(sku_demand.units_sold, 0) / 28.0 / positions.warehouses_stocking
            as avg_daily_demand,
        coalesce(inbound.open_po_quantity, 0) as open_po_quantity,
        demand_window.window_start as demand_window_start,
        demand_window.window_end as demand_window_end
    from positions
    cross join demand_window
    left join sku_demand using (sku)
    left join inbound using (sku)
    left join {{ ref('suppliers') }} as suppliers using (supplier_id)
),

covered as (
    select
        *,
        -- Rounded here, so that the alert rule and severity use the days of cover shown.
        cast(round(case when avg_daily_demand > 0 then on_hand / avg_daily_demand end, 1)
            as double precision) as days_of_cover
    from measured
)

select
    sku,
    warehouse,
    product_name,
    category,
    supplier_id,
    supplier_name,
    snapshot_date,
    on_hand,
    reorder_point,
    cast(round(sku_daily_demand, 3) as double precision) as sku_daily_demand,
    cast(round(avg_daily_demand, 3) as double precision) as avg_daily_demand,
    days_of_cover,
    lead_time_days,
    open_po_quantity,
    case when on_hand = 0 then 'stock_out' else 'cover_below_lead_time' end as alert_reason,
    case
        when on_hand = 0 or days_of_cover < lead_time_days / 2.0 then 'critical'
        else 'warning'
    end as severity,
    demand_window_start,
    demand_window_end
from covered
where on_hand = 0
    or days_of_cover < lead_time_days
