-- Daily revenue per order currency, with the reporting-currency (USD) value.
select
    o.order_date,
    o.currency,
    count(*) as orders,
    sum(o.amount) as revenue,
    sum(o.amount * r.rate_to_usd) as revenue_usd
from {{ ref('fct_orders') }} as o
left join {{ ref('stg_fx_rates') }} as r
    on o.order_date = r.rate_date and o.currency = r.currency
group by o.order_date, o.currency
