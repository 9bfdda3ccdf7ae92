select
    order_item_id,
    order_id,
    product_sku,
    quantity,
    unit_price_cents / 100.0 as unit_price
from {{ source('app', 'order_items') }}
