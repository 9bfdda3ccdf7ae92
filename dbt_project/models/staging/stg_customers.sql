select
    customer_id,
    lower(email) as email,
    full_name,
    country,
    tier,
    created_at
from {{ source('app', 'customers') }}
