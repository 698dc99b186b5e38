-- Daily activity per customer: one row per customer and event date with at least one event.
select
    events.customer_id,
    events.event_date as activity_date,
    count(*) as events,
    count(*) filter (where events.event_type = 'login') as logins,
    count(*) filter (where events.event_type = 'feature_use') as feature_uses,
    count(distinct events.feature) as distinct_features,
    cast(coalesce(sum(events.duration_ms), 0) as bigint) as total_duration_ms,
    min(events.occurred_at) as first_event_at,
    max(events.occurred_at) as last_event_at
from {{ ref('usage_events_clean') }} as events
inner join {{ ref('customers') }} as customers using (customer_id)
group by events.customer_id, events.event_date
