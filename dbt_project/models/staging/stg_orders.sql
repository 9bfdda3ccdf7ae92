select
    order_id,
    customer_id,
    ordered_at,
    cast(ordered_at as date) as order_date,
    status,
    upper(currency) as currency,
    amount_cents / 100.0 as amount
from {{ source('app', 'orders') }}
