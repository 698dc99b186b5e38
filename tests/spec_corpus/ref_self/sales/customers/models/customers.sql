select * from {{ ref('stg_customers') }}
union all select * from {{ ref('customers') }}
