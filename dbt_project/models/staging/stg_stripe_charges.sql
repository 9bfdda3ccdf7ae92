select
    id as charge_id,
    metadata_order_id as order_id,
    amount / 100.0 as amount,
    upper(currency) as currency,
    status,
    refunded,
    created as created_at
from {{ source('stripe', 'charges') }}
