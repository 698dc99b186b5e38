select *
from {{ source('customer', 'raw_customers') }}
