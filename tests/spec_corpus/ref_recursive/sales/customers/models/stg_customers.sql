select * from {{ source('customers', 'raw_customers') }}
where id not in (select id from {{ ref('customers') }})
