select * from {{ source('shipments', 'raw_shipments') }}
left join {{ ref('orders') }} using (order_id)
