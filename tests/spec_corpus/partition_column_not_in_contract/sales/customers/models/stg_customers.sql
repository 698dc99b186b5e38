select * from {{ source('customers', 'raw_customers') }}
