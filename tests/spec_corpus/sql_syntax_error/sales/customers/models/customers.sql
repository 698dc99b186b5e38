{{ config(materialized='table') }}
select id,
       name
from {{ ref('stg_customers') }}
where id > and name is not null
