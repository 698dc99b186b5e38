-- 30-day engagement per customer. The window ends at the latest event date in the data (never
-- current_date), so the same events always give the same result.
--   high:    active on 4 or more days of the window (about weekly use or more)
--   medium:  active on 2 or 3 days
--   low:     active on 1 day
--   dormant: no event in the window
with bounds as (
    select
        max(activity_date) as window_end,
        cast(max(activity_date) - interval '29 days' as date) as window_start
    from {{ ref('daily_usage') }}
),

windowed as (
    select
        daily.customer_id,
        count(*) as active_days,
        cast(sum(daily.events) as bigint) as events,
        cast(sum(daily.logins) as bigint) as logins,
        cast(sum(daily.total_duration_ms) as bigint) as total_duration_ms
    from {{ ref('daily_usage') }} as daily
    cross join bounds
    where daily.activity_date between bounds.window_start and bounds.window_end
    group by daily.customer_id
),

features as (
    select
        events.customer_id,
        count(distinct events.feature) as features_used
    from {{ ref('usage_events_clean') }} as events
    cross join bounds
    where events.event_date between bounds.window_start and bounds.window_end
    group by events.customer_id
),

last_seen as (
    select
        customer_id,
        max(last_event_at) as last_seen_at
    from {{ ref('daily_usage') }}
    group by customer_id
)

select
    customers.customer_id,
    bounds.window_start,
    bounds.window_end,
    coalesce(windowed.active_days, 0) as active_days,
    coalesce(windowed.events, 0) as events,
    coalesce(windowed.logins, 0) as logins,
    coalesce(features.features_used, 0) as features_used,
    coalesce(windowed.total_duration_ms, 0) as total_duration_ms,
    last_seen.last_seen_at,
    cast(bounds.window_end - cast(last_seen.last_seen_at as date) as integer)
        as days_since_last_seen,
    case
        when coalesce(windowed.active_days, 0) >= 4 then 'high'
        when coalesce(windowed.active_days, 0) >= 2 then 'medium'
        when coalesce(windowed.active_days, 0) >= 1 then 'low'
        else 'dormant'
    end as engagement_tier
from {{ ref('customers') }} as customers
cross join bounds
left join windowed using (customer_id)
left join features using (customer_id)
left join last_seen using (customer_id)
