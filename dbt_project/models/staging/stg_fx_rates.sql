select
    rate_date,
    upper(currency) as currency,
    rate_to_usd
from {{ source('fx', 'rates') }}
