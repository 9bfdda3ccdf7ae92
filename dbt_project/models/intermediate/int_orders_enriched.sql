-- Orders with their customer and payment, one row per order.
select
    o.order_id,
    o.customer_id,
    o.ordered_at,
    o.order_date,
    o.status,
    o.currency,
    o.amount,
    c.country,
    c.tier,
    p.paid_amount,
    p.refunded
from {{ ref('stg_orders') }} as o
left join {{ ref('stg_customers') }} as c
    on o.customer_id = c.customer_id
left join {{ ref('int_order_payments') }} as p
    on o.order_id = p.order_id
