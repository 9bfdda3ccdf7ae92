"""The reconciliation spec, declared in dbt YAML under ``config.meta.agent_de.reconcile`` (or the older ``meta``).

Example (``models/marts/_marts.yml``)::

    - name: fct_orders
      config:
        meta:
          agent_de:
            reconcile:
              - name: orders_vs_stripe
                against: "source('stripe', 'charges')"
                key: [order_id]
                key_against: [metadata_order_id]
                where_against: "status = 'succeeded'"
                compare:
                  amount: {against: "amount / 100.0", abs_tol: 0.01}
                segment_by: [currency]
                aggregates: ["sum(amount)", "count(*)"]
                thresholds: {missing_pct: 0.1}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from dagster_agent_de.core.models import CheckSeverity, validation_problems
from dagster_agent_de.errors import SpecError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_AGG = re.compile(r"^\s*(sum|count|min|max|avg)\s*\(\s*(\*|[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.I)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CompareColumn(_Strict):
    """How to compare one column. ``expr``/``against`` are SQL over each side's own columns."""

    expr: str | None = Field(default=None, description="Expression on the pipeline side (default: the column).")
    against: str | None = Field(default=None, description="Expression on the source-of-truth side (default: same name).")
    abs_tol: float = Field(default=0.0, ge=0)
    rel_tol: float = Field(default=0.0, ge=0)


class Thresholds(_Strict):
    """Percentages (0.1 means 0.1%) above which the check fails."""

    missing_pct: float = Field(default=0.0, ge=0)
    extra_pct: float = Field(default=0.0, ge=0)
    mismatched_pct: float = Field(default=0.0, ge=0)
    aggregate_pct: float = Field(default=0.0, ge=0)
    duplicate_keys: int = Field(default=0, ge=0)


class HttpSource(_Strict):
    """A paginated JSON API used as the source of truth, loaded into a temporary table first."""

    url: str
    records: str = Field(default="data", description="Key of the list of records in each page ('' = the page is the list).")
    next: str | None = Field(default=None, description="Key holding the next page URL (absent/None ends).")
    auth_env: str | None = Field(default=None, description="Env var with a bearer token.")
    max_pages: int = Field(default=1000, ge=1)
    timeout_s: float = Field(default=30.0, gt=0, description="Total time for one request (redirects, headers, body).")
    total_timeout_s: float = Field(default=600.0, gt=0, description="Total time for the whole source (every page).")
    max_bytes: int = Field(default=100_000_000, gt=0, description="Bytes read over the whole source.")

    @field_validator("url")
    @classmethod
    def _http_only(cls, v: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r}: only http:// and https:// URLs with a host; use `against: file:PATH` for a file")
        return v


class DuckDBConnection(_Strict):
    """Another DuckDB file holding the source of truth."""

    type: Literal["duckdb"] = "duckdb"
    path: str

    def describe(self) -> str:
        return self.path


class PostgresConnection(_Strict):
    """A PostgreSQL database holding the source of truth (often the application database), with the
    fields of a dbt-postgres profile output. Keep the password out of YAML: name the environment variable
    holding it (``password_env``), or leave both out and let libpq read ``PGPASSFILE``/``~/.pgpass``."""

    type: Literal["postgres"]
    host: str
    port: int = Field(default=5432, gt=0, lt=65536)
    user: str
    password: str | None = Field(default=None, repr=False)
    password_env: str | None = Field(default=None, description="Environment variable holding the password.")
    dbname: str
    schema_: str | None = Field(default=None, alias="schema")
    sslmode: str | None = None
    connect_timeout: int | None = Field(default=None, gt=0)

    def describe(self) -> str:
        return f"postgres {self.user}@{self.host}:{self.port}/{self.dbname}"

    def profile_output(self) -> dict[str, Any]:
        """As a dbt-postgres profile output (the password read from ``password_env`` now, not stored)."""
        import os

        from dagster_agent_de.errors import ConfigError

        password = self.password
        if self.password_env:
            password = os.environ.get(self.password_env)
            if password is None:
                raise ConfigError(f"connection {self.describe()}: environment variable {self.password_env} "
                                  "(password_env) is not set")
        return {"type": "postgres", "host": self.host, "port": self.port, "user": self.user, "password": password,
                "dbname": self.dbname, "schema": self.schema_, "sslmode": self.sslmode,
                "connect_timeout": self.connect_timeout}


def _connection_type(value: Any) -> str:
    return str(value.get("type", "duckdb")) if isinstance(value, dict) else str(getattr(value, "type", ""))


Connection = Annotated[
    Annotated[DuckDBConnection, Tag("duckdb")] | Annotated[PostgresConnection, Tag("postgres")],
    Discriminator(_connection_type),
]
"""Another connection holding the source of truth: ``type: duckdb`` (a file) or ``type: postgres``."""


def _connection_or_name(value: Any) -> str:
    return "name" if isinstance(value, str) else _connection_type(value)


ConnectionOrName = Annotated[
    Annotated[str, Tag("name")] | Annotated[DuckDBConnection, Tag("duckdb")] | Annotated[PostgresConnection, Tag("postgres")],
    Discriminator(_connection_or_name),
]
"""A connection's fields, or its name (a connection of the agent's settings or a dbt profile output)."""


class ReconcileSpec(_Strict):
    """One reconciliation of a dbt model against a source of truth."""

    name: str
    model: str = Field(description="The dbt model (filled in from where the spec is declared).")
    description: str = ""
    against: str = Field(description="source('s','t'), ref('m'), a relation, 'file:PATH' (CSV/Parquet) or 'http'.")
    connection: ConnectionOrName | None = Field(
        default=None, description="Another connection holding the truth: its fields, or the name of a connection in "
        "the agent's settings or of a dbt profile output (engines/reconcile/connections.py).")
    http: HttpSource | None = None
    key: list[str] = Field(min_length=1)
    key_against: list[str] | None = None
    compare: dict[str, CompareColumn] = Field(default_factory=dict)
    where: str | None = None
    where_against: str | None = None
    segment_by: list[str] = Field(default_factory=list)
    aggregates: list[str] = Field(default_factory=list)
    thresholds: Thresholds = Thresholds()
    severity: CheckSeverity = "error"
    blocking: bool = False
    investigate: bool = True
    sample_size: int = Field(default=10, ge=0, le=1000)

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError(f"{v!r} must be an identifier (letters, digits, _): it names a Dagster asset check")
        return v

    @field_validator("key", "key_against", "segment_by")
    @classmethod
    def _identifiers(cls, v: list[str] | None) -> list[str] | None:
        for col in v or []:
            if not _IDENT.match(col):
                raise ValueError(f"{col!r} is not a column name")
        return v

    @field_validator("aggregates")
    @classmethod
    def _aggregates(cls, v: list[str]) -> list[str]:
        for agg in v:
            if not _AGG.match(agg):
                raise ValueError(f"{agg!r}: use sum(col), count(*), count(col), min(col), max(col) or avg(col)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ReconcileSpec:
        if self.key_against is not None and len(self.key_against) != len(self.key):
            raise ValueError(f"key_against has {len(self.key_against)} columns but key has {len(self.key)}")
        if self.against.strip() == "http" and self.http is None:
            raise ValueError("against: http needs an `http:` block with at least `url`")
        return self

    @property
    def keys_against(self) -> list[str]:
        return self.key_against or self.key

    def compare_expr(self, column: str, side: Literal["model", "against"]) -> str:
        cmp = self.compare.get(column)
        if cmp is None:
            return column
        return (cmp.expr if side == "model" else cmp.against) or column

    def aggregate_parts(self) -> list[tuple[str, str, str]]:
        """(function, column or *, label) for each aggregate, e.g. ('sum', 'amount', 'sum_amount')."""
        out = []
        for agg in self.aggregates:
            m = _AGG.match(agg)
            assert m
            fn, col = m.group(1).lower(), m.group(2)
            out.append((fn, col, f"{fn}_{'rows' if col == '*' else col}"))
        return out


@dataclass(frozen=True)
class InvalidSpec:
    """A reconcile spec that failed validation: its check exists and fails with ``error``.

    One bad spec must not stop the code location from loading; the others still run.
    """

    model: str
    name: str
    error: SpecError
    against: str = "(invalid spec)"


def _parse_one(model: str, i: int, item: Any) -> ReconcileSpec:
    if not isinstance(item, dict):
        raise SpecError(f"model {model}: meta.agent_de.reconcile[{i}] must be a mapping")
    try:
        return ReconcileSpec.model_validate({**item, "model": model})
    except ValidationError as e:
        problems = validation_problems(e)
        label = item.get("name", f"#{i}")
        raise SpecError(f"model {model}, reconcile spec {label!r} (meta.agent_de.reconcile[{i}]): {problems}") from e


def _items(model: str, raw: Any) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        return [raw]
    if not isinstance(raw, list):
        raise SpecError(f"model {model}: meta.agent_de.reconcile must be a list of specs, got {type(raw).__name__}")
    return raw


def parse_specs(model: str, raw: Any) -> list[ReconcileSpec]:
    """Validate ``meta.agent_de.reconcile`` of one model; raise :class:`SpecError` naming the field."""
    specs, names = [], set()
    for i, item in enumerate(_items(model, raw)):
        spec = _parse_one(model, i, item)
        if spec.name in names:
            raise SpecError(f"model {model}: two reconcile specs are named {spec.name!r}; names must be unique")
        names.add(spec.name)
        specs.append(spec)
    return specs


def specs_from_manifest(manifest: Any) -> list[ReconcileSpec | InvalidSpec]:
    """All reconcile specs declared on models of a :class:`~dagster_agent_de.manifest.Manifest`.

    An invalid spec comes back as an :class:`InvalidSpec` carrying its :class:`SpecError` (named after
    the spec when its name is usable), so the caller fails that spec's check and runs the others.
    """
    out: list[ReconcileSpec | InvalidSpec] = []
    for node in sorted(manifest.models(), key=lambda n: n.name):
        try:
            items = _items(node.name, node.agent_de_meta.get("reconcile"))
        except SpecError as e:
            out.append(InvalidSpec(node.name, "invalid_reconcile_spec", e))
            continue
        names: set[str] = set()
        for i, item in enumerate(items):
            raw_name = item.get("name") if isinstance(item, dict) else None
            name = raw_name if isinstance(raw_name, str) and _IDENT.match(raw_name) else f"invalid_reconcile_spec_{i}"
            try:
                spec = _parse_one(node.name, i, item)
                if spec.name in names:
                    raise SpecError(f"model {node.name}: two reconcile specs are named {spec.name!r}; names must be unique")
            except SpecError as e:
                out.append(InvalidSpec(node.name, name if name not in names else f"{name}_{i}", e))
                names.add(name)
                continue
            names.add(spec.name)
            out.append(spec)
    return out
