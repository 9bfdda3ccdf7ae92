-- One row per order: what Stripe says was paid for it.
select
    order_id,
    sum(case when status = 'succeeded' then amount else 0 end) as paid_amount,
    count(*) as charge_attempts,
    bool_or(refunded) as refunded
from {{ ref('stg_stripe_charges') }}
group by order_id
