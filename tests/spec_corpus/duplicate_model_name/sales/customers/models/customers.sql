select * from {{ ref('staging') }}
