-- One row per event: the pipeline delivers at least once, so an event_id may repeat. The copy
-- with the latest occurred_at is kept (a re-sent event carries the client's corrected time); the
-- other columns only break ties, so that the same files always give the same rows.
with ranked as (
    select
        *,
        row_number() over (
            partition by event_id
            order by
                occurred_at desc,
                duration_ms desc nulls last,
                customer_id,
                event_type,
                feature nulls last
        ) as copy_rank
    from {{ ref('stg_usage_events') }}
    where event_id is not null
        and customer_id is not null
        and occurred_at is not null
),

deduplicated as (
    select * from ranked where copy_rank = 1
)

select
    event_id,
    customer_id,
    event_type,
    feature,
    occurred_at,
    cast(occurred_at as date) as event_date,
    duration_ms
from deduplicated
