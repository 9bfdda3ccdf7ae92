"""Detect PII columns by name and by the values they hold. Detection only: nothing is masked,
hashed or dropped here; handling is a human's decision (an authority gap)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dagster_agent_de.engines.onboard.profile import ColumnProfile

_NAME_RULES: list[tuple[str, str]] = [
    ("email", r"(^|_)e?mail(_address)?($|_)"),
    ("phone", r"(^|_)(phone|mobile|cell|fax|tel)(_number|_no)?($|_)"),
    ("name", r"(^|_)(first|last|full|given|family|middle|sur)_?name($|_)|^name$|^customer_name$|^contact_name$"),
    ("address", r"(^|_)(street|address|addr|postcode|postal_code|zip|zip_code)($|_)"),
    ("birth_date", r"(^|_)(dob|date_of_birth|birth_?date|birthday)($|_)"),
    ("national_id", r"(^|_)(ssn|social_security|national_id|passport|tax_id|nin)($|_)"),
    ("ip_address", r"(^|_)ip(_address|_addr)?($|_)"),
    ("card_number", r"(^|_)(card_number|cc_number|credit_card|pan)($|_)"),
    ("iban", r"(^|_)(iban|account_number|bank_account)($|_)"),
]
_VALUE_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")),
    ("phone", re.compile(r"^\+?[0-9][0-9 ().-]{7,18}[0-9]$")),
    ("ip_address", re.compile(r"^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$")),
    ("iban", re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$")),
    ("card_number", re.compile(r"^\d{13,19}$")),
]
VALUE_SHARE = 0.8


@dataclass(frozen=True)
class PIIHit:
    column: str
    kind: str
    by: str  # "name", "values" or "schema"
    evidence: str  # counts only; never a value

    @property
    def confidence(self) -> float:
        return {"values": 0.9, "schema": 0.9, "name": 0.7}[self.by]


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def detect_pii(columns: list[ColumnProfile]) -> list[PIIHit]:
    """PII columns with why. Values win over names (a ``contact`` column full of emails is an email).

    >>> c = ColumnProfile("contact", "VARCHAR", 1, sample=["a@x.io", "b@y.org", "c@z.com"])
    >>> [(h.column, h.kind, h.by) for h in detect_pii([c, ColumnProfile("first_name", "VARCHAR", 2)])]
    [('contact', 'email', 'values'), ('first_name', 'name', 'name')]
    """
    hits: list[PIIHit] = []
    for c in columns:
        name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", c.name).lower()
        if c.pii_hint:
            hits.append(PIIHit(c.name, c.pii_hint, "schema", f"declared format {c.pii_hint!r} in the API schema"))
            continue
        by_value = None
        if c.sample:
            for kind, pattern in _VALUE_RULES:
                matched = [v for v in c.sample if pattern.match(v.strip())]
                if kind == "card_number":
                    matched = [v for v in matched if _luhn(v.strip())]
                if len(matched) >= max(3, VALUE_SHARE * len(c.sample)):
                    by_value = PIIHit(c.name, kind, "values",
                                      f"{len(matched)} of {len(c.sample)} sampled values look like {kind.replace('_', ' ')}s")
                    break
        if by_value is not None:
            hits.append(by_value)
            continue
        for kind, rule in _NAME_RULES:
            if re.search(rule, name):
                if kind in ("ip_address",) and c.kind not in ("text", "other"):
                    continue
                hits.append(PIIHit(c.name, kind, "name", f"the column name {c.name!r} suggests {kind.replace('_', ' ')}"))
                break
    return hits
