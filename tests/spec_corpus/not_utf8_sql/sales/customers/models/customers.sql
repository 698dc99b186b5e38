-- Dernière version
select * from {{ ref('stg_customers') }}
