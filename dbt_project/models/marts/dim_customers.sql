with order_stats as (
    select
        customer_id,
        count(*) as lifetime_orders,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date
    from {{ ref('fct_orders') }}
    group by customer_id
)

select
    c.customer_id,
    c.email,
    c.full_name,
    c.country,
    c.tier,
    h.lifecycle_stage,
    coalesce(s.lifetime_orders, 0) as lifetime_orders,
    s.first_order_date,
    s.last_order_date
from {{ ref('stg_customers') }} as c
left join {{ ref('stg_hubspot_contacts') }} as h
    on c.email = h.email
left join order_stats as s
    on c.customer_id = s.customer_id
