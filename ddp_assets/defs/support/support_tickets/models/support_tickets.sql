-- One row per ticket: the depot port merges changed tickets on ticket_id, so the raw table
-- already holds each ticket's latest state.
select
    cast(ticket_id as bigint) as ticket_id,
    cast(customer_id as bigint) as customer_id,
    channel,
    priority,
    status,
    status in ('open', 'pending') as is_open,
    cast(opened_at as timestamp) as opened_at,
    cast(updated_at as timestamp) as updated_at
from {{ source('support_tickets', 'raw_tickets') }}
