select * from {{ source('customers', 'raw_customer') }}
