select * from {{ source('orders', 'raw_orders') }}
