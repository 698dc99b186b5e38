select * from {{ ref('shipments') }}
