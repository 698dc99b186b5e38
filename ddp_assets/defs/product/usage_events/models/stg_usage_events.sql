-- The tracking export, typed: ids trimmed, enums lower-cased, timestamps as UTC timestamps.
with source as (
    select * from {{ source('usage_events', 'raw_events') }}
)

select
    trim(cast(event_id as varchar)) as event_id,
    cast(customer_id as bigint) as customer_id,
    lower(trim(cast(event_type as varchar))) as event_type,
    nullif(lower(trim(cast(feature as varchar))), '') as feature,
    cast(occurred_at as timestamp) as occurred_at,
    cast(duration_ms as bigint) as duration_ms
from source
