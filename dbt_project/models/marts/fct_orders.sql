select
    order_id,
    customer_id,
    ordered_at,
    order_date,
    status,
    currency,
    amount,
    paid_amount,
    refunded,
    country,
    tier
from {{ ref('int_orders_enriched') }}
where status <> 'cancelled'
