select
    contact_id,
    lower(email) as email,
    lifecycle_stage,
    created_at
from {{ source('hubspot', 'contacts') }}
