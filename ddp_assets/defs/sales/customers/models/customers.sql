-- The latest record per customer: the CRM export may repeat a customer after an update.
with ranked as (
    select
        *,
        row_number() over (partition by customer_id order by updated_at desc) as recency
    from {{ ref('stg_customers') }}
)

select
    customer_id,
    first_name,
    last_name,
    email,
    country,
    segment,
    signup_date,
    updated_at
from ranked
where recency = 1
