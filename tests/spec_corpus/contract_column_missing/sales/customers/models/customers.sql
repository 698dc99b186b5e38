select id
from {{ ref('stg_customers') }}
