select
    id,
    upper(name) as full_name
from {{ ref('stg_customers') }}
