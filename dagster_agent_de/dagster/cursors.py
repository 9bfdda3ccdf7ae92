"""Typed sensor cursors: what a sensor remembers between ticks, as a frozen model serialized to JSON.

A cursor written by an older version (the schema poll's bare fingerprint) still parses, so upgrading
never re-requests old drift.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, RootModel


class _Cursor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def dump(self) -> str:
        return self.model_dump_json()


class SchemaPollCursor(_Cursor):
    """The schema-poll sensor: the fingerprint of the schemas it judged last.

    >>> SchemaPollCursor.parse(SchemaPollCursor(fingerprint="ab12").dump()).fingerprint
    'ab12'
    >>> SchemaPollCursor.parse("ab12").fingerprint  # an older cursor: the bare fingerprint
    'ab12'
    >>> SchemaPollCursor.parse(None).fingerprint is None
    True
    """

    fingerprint: str | None = None

    @classmethod
    def parse(cls, raw: str | None) -> SchemaPollCursor:
        if not raw:
            return cls()
        if raw.lstrip().startswith("{"):
            return cls.model_validate_json(raw)
        return cls(fingerprint=raw)


class FailedCheckCursor(RootModel[dict[str, int]]):
    """The failed-check sensor: per check (``asset:check``), the last evaluation id it has handled.

    Serialized as that plain mapping (the form older versions wrote).

    >>> c = FailedCheckCursor.parse('{"orders:orders_vs_raw": 7}')
    >>> c.last_seen("orders:orders_vs_raw"), c.last_seen("orders:other")
    (7, 0)
    >>> c.advanced({"orders:other": 3}).dump()
    '{"orders:orders_vs_raw":7,"orders:other":3}'
    """

    model_config = ConfigDict(frozen=True)

    @classmethod
    def parse(cls, raw: str | None) -> FailedCheckCursor:
        return cls.model_validate_json(raw) if raw else cls({})

    def last_seen(self, check: str) -> int:
        return self.root.get(check, 0)

    def advanced(self, updates: dict[str, int]) -> FailedCheckCursor:
        return FailedCheckCursor(dict(sorted({**self.root, **updates}.items())))

    def dump(self) -> str:
        return self.model_dump_json()
