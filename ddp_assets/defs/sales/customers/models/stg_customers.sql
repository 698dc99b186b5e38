with source as (
    select * from {{ source('customers', 'raw_customers') }}
),

renamed as (
    select
        cast(customer_id as bigint) as customer_id,
        trim(first_name) as first_name,
        trim(last_name) as last_name,
        lower(trim(email)) as email,
        upper(country) as country,
        lower(segment) as segment,
        cast(signup_date as date) as signup_date,
        cast(updated_at as timestamp) as updated_at
    from source
)

select * from renamed
