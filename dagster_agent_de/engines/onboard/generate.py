"""From a profiled table (or an API schema) to a dbt proposal: source with freshness, staging
model, tests and docs. What the data shows is done and said; what needs business knowledge or
sign-off becomes an escalation (context gap / authority gap), never a silent guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from pydantic import BaseModel, Field

from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption
from dagster_agent_de.engines.onboard.pii import detect_pii
from dagster_agent_de.engines.onboard.profile import ColumnProfile, TableProfile
from dagster_agent_de.manifest import Manifest

LOADED_AT_NAMES = ("_loaded_at", "_etl_loaded_at", "_fivetran_synced", "_airbyte_extracted_at", "_airbyte_emitted_at",
                   "_sdc_batched_at", "_sdc_extracted_at", "_dlt_loaded_at", "_ingested_at", "ingested_at", "loaded_at",
                   "_synced_at", "synced_at", "_extracted_at", "extracted_at")
"""Columns a loader writes when it lands a row, best first: what a source's ``loaded_at_field`` should be."""
LOADED_AT = re.compile(r"(^|_)(loaded|synced|ingested|extracted|batched|landed)(_at|_time|_ts|_timestamp)?$")
CHANGED_AT_NAMES = ("updated_at", "modified_at", "last_modified_at", "_modified")
"""When a row last changed in the source system: the next best stand-in for a load time."""
EVENT_AT_NAMES = ("created_at", "inserted_at")
"""A business event's time (a ticket opened): says when loads happen only if events never stop."""
RAW_PREFIXES, RAW_SUFFIXES = ("raw_",), ("_raw",)
"""What a landing schema's name carries that its source name does not (``raw_zendesk`` -> ``zendesk``)."""
MONEY = re.compile(r"(^|_)(amount|price|total|revenue|cost|fee|balance|value)($|_)")
MIN_ROWS_FOR_VALUES = 20
FRESHNESS = {  # label -> (warn hours, error hours)
    "hourly loads": (2, 6),
    "twice-daily loads": (12, 24),
    "daily loads": (26, 50),
}
NO_FRESHNESS = "no freshness check (loaded on demand, or once)"
"""The last option of the freshness question (after :data:`FRESHNESS`'s)."""


def snake(name: str) -> str:
    """dbt-style column and model names.

    >>> snake("createdAt"), snake("Ticket ID"), snake("HTTPStatus")
    ('created_at', 'ticket_id', 'http_status')
    """
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])|(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", s).strip("_").lower()


def default_source_name(schema: str, manifest: Manifest) -> tuple[str, str]:
    """The source name for a table in ``schema`` when none is given, and where it comes from: the existing
    source that reads ``schema`` (the table joins it), else the schema without a ``raw_`` prefix or ``_raw``
    suffix.

    >>> empty = Manifest({"nodes": {}, "sources": {}})
    >>> default_source_name("raw_zendesk", empty), default_source_name("stripe_raw", empty)[0], default_source_name("raw", empty)[0]
    (('zendesk', 'the schema raw_zendesk without its raw_ prefix'), 'stripe', 'raw')
    """
    reading = sorted(str(n.raw.get("source_name")) for n in manifest.sources()
                     if str(n.raw.get("schema") or "").lower() == schema.lower() and n.raw.get("source_name"))
    if reading:
        return snake(reading[0]), f"the existing source {reading[0]} reads the schema {schema}"
    name = snake(schema)
    for prefix in RAW_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name.removeprefix(prefix), f"the schema {schema} without its {prefix} prefix"
    for suffix in RAW_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name.removesuffix(suffix), f"the schema {schema} without its {suffix} suffix"
    return name, f"the schema {schema}"


class OnboardingProposal(BaseModel):
    """Files to add to the dbt project, what was decided from the data, and what a human must decide."""

    source_name: str
    source_name_from: str = "given"  # where the default source name came from ("given": passed by the caller)
    table: str
    relation: str
    model_name: str
    files: dict[str, str] = Field(default_factory=dict)  # path inside the dbt project -> content
    done: list[str] = Field(default_factory=list)
    todo: list[str] = Field(default_factory=list)  # edits the agent does not make to existing files
    decisions: list[Escalation] = Field(default_factory=list)
    pii: list[dict[str, Any]] = Field(default_factory=list)
    statements: list[str] = Field(default_factory=list)


@dataclass
class _Draft:
    """What the steps of :func:`propose` read and add to, in order (the proposal under construction)."""

    profile: TableProfile
    manifest: Manifest
    owner: str | None
    now: datetime | None
    arguments_property: bool
    answers: dict[tuple[str | None, str], int]
    aliases: tuple[str, ...]
    source: str
    table: str
    model: str
    asset: str
    done: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    decisions: list[Escalation] = field(default_factory=list)
    key_col: ColumnProfile | None = None
    hits: list[Any] = field(default_factory=list)
    pii_choice: int | None = None
    loaded_at: ColumnProfile | None = None
    freshness: dict[str, Any] | None = None
    select: list[str] = field(default_factory=list)
    out_cols: list[dict[str, Any]] = field(default_factory=list)
    src_columns: list[dict[str, Any]] = field(default_factory=list)
    model_columns: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def decider(self) -> str:
        """Who answers this table's decisions: ``--owner``, else the existing source's ``meta.owner``, else
        the default owner every escalation falls back to."""
        from dagster_agent_de.engines.escalate.raising import DEFAULT_OWNER

        owners = [str(n.meta["owner"]) for n in self.manifest.sources()
                  if n.raw.get("source_name") == self.source and n.meta.get("owner")]
        return self.owner or next(iter(owners), DEFAULT_OWNER)

    @property
    def pii_cols(self) -> set[str]:
        return {h.column for h in self.hits}

    def generic(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        body = {"arguments": args} if self.arguments_property else dict(args)
        return {name: {**body, "config": {"severity": "warn"}}}

    def decide(self, kind: EscalationKind, key: str, decision: str, options: list[EscalationOption], rec: int | None,
               why: str, blocking: str, continues: str) -> int | None:
        """Ask, or return the option a human already chose for this table, under this source name or another
        one it was onboarded as (then nothing is asked)."""
        chosen = next((self.answers[(a, f"onboard:{key}")] for a in (self.asset, *self.aliases)
                       if (a, f"onboard:{key}") in self.answers), None)
        if chosen is not None and 0 <= chosen < len(options):
            self.done.append(f"answered by a human: {decision} -> {options[chosen].label}")
            return chosen
        self.decisions.append(Escalation(
            id="new", kind=kind, decision=decision, options=options, recommendation=rec, recommendation_reason=why,
            blocking=blocking, continues=continues, owner=self.decider, asset=self.asset, finding_pattern=f"onboard:{key}",
            applies_to=[f"{self.asset}.{o.label.split(' ')[0]}" for o in options] if key == "grain" else [],
        ))
        return None


def propose(profile: TableProfile, manifest: Manifest, *, source_name: str | None = None,
            owner: str | None = None, now: datetime | None = None, arguments_property: bool = False,
            answers: dict[tuple[str | None, str], int] | None = None, aliases: Iterable[str] = ()) -> OnboardingProposal:
    """The proposal for one table: :data:`STEPS` in order over one draft.

    ``answers``: decisions humans already made, (asset, finding pattern) -> chosen option, as
    :func:`~dagster_agent_de.engines.escalate.raising.answered_choices` reads them from the escalation
    store: this table's are applied, said in ``done``, and not asked again. ``aliases``: the assets
    (``source.table``) the same relation was onboarded as before under other source names, whose answers
    hold for it too.

    ``source_name``: default :func:`default_source_name` (said in ``done`` and ``source_name_from``).

    ``arguments_property``: the project sets dbt's ``require_generic_test_arguments_property`` flag,
    so generic test arguments go under ``arguments:`` (else at the top level, as dbt < 1.10 reads them).
    """
    source, source_from = (snake(source_name), "given") if source_name else default_source_name(profile.schema, manifest)
    asset = f"{source}.{profile.table}"
    draft = _Draft(profile=profile, manifest=manifest, owner=owner, now=now, arguments_property=arguments_property,
                   answers=answers or {}, aliases=tuple(a for a in aliases if a != asset), source=source,
                   table=profile.table, model=f"stg_{source}__{snake(profile.table)}", asset=asset)
    for step in STEPS:
        step(draft)
    draft.done.insert(0, f"{len(profile.columns)} columns -> {draft.model} (snake_case names)"
                      + (f"; source name {source}: {source_from}" if source_name is None else ""))
    return OnboardingProposal(
        source_name=source, source_name_from=source_from, table=draft.table, relation=profile.relation, model_name=draft.model, files=draft.files,
        done=draft.done, todo=draft.todo, decisions=draft.decisions,
        pii=[{"column": h.column, "kind": h.kind, "by": h.by, "evidence": h.evidence} for h in draft.hits],
        statements=profile.statements,
    )


def _grain_step(d: _Draft) -> None:
    """The grain: the column that identifies a row (asked when the data cannot tell)."""
    d.key_col = _grain(d.profile, d.decide, d.done)


def _pii_step(d: _Draft) -> None:
    """PII: detect, tag, hand the handling to a human."""
    d.hits = list(detect_pii(d.profile.columns))
    if not d.hits:
        return
    hits, asset, model = d.hits, d.asset, d.model
    listing = ", ".join(f"{h.column} ({h.kind}, by {h.by})" for h in hits)
    d.done.append(f"tagged PII columns config.meta.agent_de.pii: {listing}; the agent masks them in everything it outputs")
    d.pii_choice = d.decide(
        EscalationKind.AUTHORITY_GAP, "pii_handling",
        f"How must the PII columns of {asset} ({', '.join(sorted(d.pii_cols))}) be handled in {model}?",
        [EscalationOption(label="hash them in staging (dbt.hash)", evidence="; ".join(h.evidence for h in hits),
                          consequence="joins on the hash still work; the raw values stay only in the raw schema"),
         EscalationOption(label="keep them as they are, tagged", consequence="downstream models can read them; access control must cover them"),
         EscalationOption(label="drop them from staging", consequence="no model downstream can use them")],
        0, "direct identifiers are rarely needed past staging", blocking=f"any change to how {model} exposes PII",
        continues=f"{model} passes the columns through unchanged and tagged PII (nothing is masked without sign-off)")


def _freshness_step(d: _Draft) -> None:
    """Freshness from the loaded-at column's lag; the SLA itself is asked. A threshold the data already
    fails is never written: it is asked, with no recommendation."""
    found = _loaded_at(d.profile.columns)
    if found is None:
        d.todo.append(f"no column says when a row was loaded: add config: loaded_at_field to sources.{d.source}.{d.table} "
                      "to get freshness checks (e.g. the loader's _loaded_at)")
        return
    loaded_at, what = found
    d.loaded_at = loaded_at
    stand_in = ""
    if what != "load":
        stand_in = (f"{loaded_at.name} is {'when a row last changed' if what == 'change' else 'a business event time'}, "
                    "not when the loader landed it (no load timestamp column such as _loaded_at or _fivetran_synced)")
        d.todo.append(f"{stand_in}: it stands in as loaded_at_field, so freshness says when the latest row "
                      f"{'changed' if what == 'change' else 'happened'}; have the loader add a load timestamp and use it instead")
    lag_h = _lag_hours(loaded_at.max, d.now) if d.profile.from_data else None
    # the tightest load cadence the data does not already break (nothing measured: twice-daily)
    label = "twice-daily loads" if lag_h is None else next((lb for lb, (w, _) in FRESHNESS.items() if lag_h < w), None)
    seen = f"the latest {loaded_at.name} is {lag_h:.1f} h old" if lag_h is not None else "no data measured yet"
    evidence = f"{seen}; {stand_in}" if stand_in else seen
    options = [EscalationOption(label=f"{lb}: warn after {w} h, error after {e} h", evidence=evidence,
                                rule=f"{d.asset} is expected to load with {lb}") for lb, (w, e) in FRESHNESS.items()]
    options.append(EscalationOption(label=NO_FRESHNESS, consequence="dbt source freshness skips the table",
                                    rule=f"{d.asset} has no freshness expectation"))
    question = f"How fresh must {d.asset} be? (its dbt source freshness)"
    if label is None:  # older than every option: any threshold written now fails dbt source freshness at once
        chosen = d.decide(EscalationKind.CONTEXT_GAP, "freshness_sla", question, options, None,
                          f"the data cannot say: {seen}, older than every option allows (a stopped or one-off load?)",
                          blocking="the freshness check of the source",
                          continues="no freshness threshold is written until answered (dbt source freshness skips the table)")
    else:
        chosen = d.decide(EscalationKind.CONTEXT_GAP, "freshness_sla", question, options, list(FRESHNESS).index(label),
                          f"the tightest that what the data shows ({seen}) does not already fail", blocking="nothing",
                          continues="freshness is checked with the recommended thresholds ({} h / {} h)".format(*FRESHNESS[label]))
    picked = label if chosen is None else [*FRESHNESS, NO_FRESHNESS][chosen]
    if picked == NO_FRESHNESS:
        d.done.append(f"loaded_at_field {loaded_at.name}; no freshness check (answered; {seen})")
    elif picked is None:
        loosest, (warn, _) = list(FRESHNESS.items())[-1]
        d.done.append(f"loaded_at_field {loaded_at.name}; no freshness threshold ({seen})")
        d.todo.append(f"no freshness threshold written: {seen}, past even the {loosest} option's warn after {warn} h, so any "
                      "threshold would fail `dbt source freshness` at once; is the table still loaded, and how often? (asked)")
    else:
        warn, err = FRESHNESS[picked]
        d.done.append(f"loaded_at_field {loaded_at.name}; freshness warn {warn} h / error {err} h "
                      f"({picked}{', answered' if chosen is not None else ''}: {seen})")
        d.freshness = {"warn_after": {"count": warn, "period": "hour"}, "error_after": {"count": err, "period": "hour"}}


def _columns_step(d: _Draft) -> None:
    """The staging SELECT: snake_case names, PII as answered, money in major units (asked when unclear)."""
    pii_cols = d.pii_cols
    for c in d.profile.columns:
        name = snake(c.name)
        expr = _q(c.name) if name != c.name else c.name
        out = name
        desc = c.description
        if c.name in pii_cols and d.pii_choice == 2:
            continue  # answered: dropped from staging
        if c.name in pii_cols and d.pii_choice == 0:
            expr = "{{ dbt.hash(" + repr(_q(c.name) if name != c.name else c.name) + ") }}"
            desc = desc or f"Hash of {c.name} (PII: the raw value stays in the raw schema)."
        elif name.endswith("_cents") and c.kind in ("integer", "number"):
            out = name.removesuffix("_cents")
            expr = f"{expr} / 100.0"
            d.done.append(f"{c.name}: minor units (cents) -> {out} in major units")
            desc = desc or f"{out.replace('_', ' ').capitalize()} in major units (from {c.name})."
        elif MONEY.search(name) and c.kind == "integer":
            units = d.decide(EscalationKind.CONTEXT_GAP, f"units:{name}", f"Is {d.asset}.{c.name} in minor units (cents) or major units?",
                             [EscalationOption(label="minor units: divide by 100 in staging", rule=f"{d.asset}.{c.name} is in minor units"),
                              EscalationOption(label="major units: keep as is", rule=f"{d.asset}.{c.name} is in major units")],
                             None, "integers could be either; the data cannot say",
                             blocking=f"sums of {name} downstream", continues=f"{d.model} keeps {c.name} unchanged")
            if units == 0:
                expr = f"{expr} / 100.0"
                desc = desc or f"{name.replace('_', ' ').capitalize()} in major units (answered: stored in minor units)."
        d.select.append(f"    {expr} as {out}" if expr != out else f"    {out}")
        # a description written for what staging makes of the column (hashed, in major units) is not the raw one's
        d.out_cols.append({"source_column": c.name, "name": out, "profile": c, "description": desc,
                           "staged": desc != c.description})


def _tests_step(d: _Draft) -> None:
    """Tests and docs per column: what the data shows (keys, NOT NULL, relationships, accepted values)."""
    fks = _foreign_keys(d.manifest, exclude=d.model)
    pii_cols, rows, measured, key_col = d.pii_cols, d.profile.rows, d.profile.from_data, d.key_col
    for oc in d.out_cols:
        c = oc["profile"]
        src_col: dict[str, Any] = {"name": c.name}
        mod_col: dict[str, Any] = {"name": oc["name"]}
        tests: list[Any] = []
        desc = oc["description"] or _describe(oc["name"], c, key_col, fks, rows)
        if c is key_col:
            tests += ["unique", "not_null"]
        elif c.name in pii_cols:
            pass
        else:
            if measured and rows and c.non_null == rows and oc["name"].endswith("_id"):
                tests.append("not_null")
                d.done.append(f"{c.name}: never NULL in {rows:,} rows -> not_null")
            target = fks.get(oc["name"])
            if target is not None:
                tests.append(d.generic("relationships", {"to": target[0], "field": target[1]}))
                d.done.append(f"{oc['name']}: relationships to {target[0]}.{target[1]} (severity warn; unique there)")
            if measured and c.top_values and c.kind == "text" and rows and rows >= MIN_ROWS_FOR_VALUES and len(c.top_values) <= 8:
                values = [v for v, _ in c.top_values]
                tests.append(d.generic("accepted_values", {"values": values}))
                d.done.append(f"{oc['name']}: accepted_values {values} (all values in {rows:,} rows; severity warn)")
        if c.name in pii_cols:
            hit = next(h for h in d.hits if h.column == c.name)
            # dbt 1.10+ wants meta under config: (warned for Snowflake, BigQuery, Databricks, Redshift)
            src_col["config"] = {"meta": {"agent_de": {"pii": True, "pii_kind": hit.kind}}}
            mod_col["config"] = {"meta": {"agent_de": {"pii": True, "pii_kind": hit.kind}}}
        mod_col["description"] = desc
        src_col["description"] = (c.description or _describe(snake(c.name), c, key_col, fks, rows)) if oc["staged"] else desc
        if tests and c is key_col:
            src_col["data_tests"] = list(tests)
        if tests:
            mod_col["data_tests"] = tests
        d.src_columns.append(src_col)
        d.model_columns.append(mod_col)


def _files_step(d: _Draft) -> None:
    """The files: the source YAML (or a todo when the source exists), the staging model and its YAML."""
    profile, source, table, model, rows = d.profile, d.source, d.table, d.model, d.profile.rows
    table_entry: dict[str, Any] = {
        "name": table,
        "description": (f"Onboarded by dagster-agent-de from {profile.relation}"
                        + (f" ({rows:,} rows profiled)." if profile.from_data and rows is not None
                           else " (from an API schema; not loaded yet).")),
    }
    if d.loaded_at is not None:
        table_entry["config"] = {"loaded_at_field": d.loaded_at.name}
        if d.freshness:
            table_entry["config"]["freshness"] = d.freshness
    table_entry["columns"] = d.src_columns
    base = f"models/staging/{source}"
    existing = [s for s in d.manifest.sources() if s.raw.get("source_name") == source]
    if existing:
        defined_in = existing[0].raw.get("original_file_path") or "its YAML file"
        if any(s.name.lower() == table.lower() for s in existing):
            d.todo.append(f"source('{source}', '{table}') already exists in {defined_in}: its definition is left as it is")
        else:
            d.todo.append(f"add this table under sources: {source}: tables: in {defined_in} (the agent does not edit existing "
                          f"files; dbt cannot compile {model} until then):\n"
                          + _indent(_yaml([table_entry]), 6))
    else:
        src: dict[str, Any] = {"name": source, "description": f"Raw {source} data.", "schema": profile.schema}
        if profile.database and not profile.in_default_database:
            src["database"] = profile.database
            d.done.append(f"source database: {profile.database}, pinned (the connection's default is {profile.session_database})")
        elif profile.database:  # dbt resolves it in the target it runs: dev's database in dev, prod's in prod
            alike = [s for s in d.manifest.sources() if (s.database or "").lower() == profile.database.lower()]
            d.done.append(f"source without database: {profile.database} is the target's default database, so dbt reads "
                          f"{profile.schema}.{table} in the database of whichever target it runs"
                          + (f" (as the project's {len(alike)} existing source table(s) there do)" if alike else ""))
        if d.owner:
            src["config"] = {"meta": {"owner": d.owner}}
        src["tables"] = [table_entry]
        d.files[f"{base}/_{source}__sources.yml"] = "version: 2\n\n" + _yaml({"sources": [src]})
    d.files[f"{base}/{model}.sql"] = (  # dbt's staging style: import the source, rename, select from the last CTE
        f"-- generated by dagster-agent-de from {profile.relation}; review before merging\n"
        f"with source as (\n    select * from {{{{ source('{source}', '{table}') }}}}\n),\n\n"
        "renamed as (\n    select\n" + ",\n".join(f"    {line}" for line in d.select) + "\n    from source\n)\n\n"
        "select * from renamed\n")
    d.files[f"{base}/_{source}__models.yml"] = "version: 2\n\n" + _yaml({"models": [{
        "name": model,
        "description": f"{table} from {source}, one row per {d.key_col.name if d.key_col else 'row (grain undecided)'}.",
        "columns": d.model_columns}]})


STEPS: tuple[Callable[[_Draft], None], ...] = (
    _grain_step, _pii_step, _freshness_step, _columns_step, _tests_step, _files_step,
)
"""The chain :func:`propose` runs, in order; each step reads what the ones before it decided."""


def _grain(profile: TableProfile, decide: Any, done: list[str]) -> ColumnProfile | None:
    singular = snake(profile.table).removesuffix("s")
    preferred = ("id", f"{singular}_id", f"{snake(profile.table)}_id")

    def rank(c: ColumnProfile) -> tuple[int, int]:
        n = snake(c.name)
        return (0 if n in preferred else 1 if n.endswith(("_id", "_key", "_uuid")) else 2, c.position)

    if profile.from_data:
        unique = sorted([c for c in profile.columns if c.exact_unique], key=rank)
        if len(unique) == 1 or (unique and rank(unique[0])[0] == 0 and (len(unique) == 1 or rank(unique[1])[0] > 0)):
            done.append(f"grain: {unique[0].name} is unique and never NULL in all {profile.rows:,} rows (exact count) -> unique, not_null")
            return unique[0]
        options = [EscalationOption(label=f"{c.name} (unique in {profile.rows:,} rows)", rule=f"{profile.table} has one row per {c.name}")
                   for c in unique] or [EscalationOption(label=f"{c.name} ({c.distinct:,} distinct in {profile.rows:,} rows)")
                                        for c in sorted(profile.columns, key=rank)[:3] if c.distinct]
        options.append(EscalationOption(label="no single column: the grain is a combination (name it in the answer)"))
        chosen = decide(EscalationKind.CONTEXT_GAP, "grain", f"Which column identifies one row of {profile.schema}.{profile.table}?",
                        options, 0 if unique else None,
                        "unique, never NULL and named like a key" if unique else "no column is unique and never NULL",
                        blocking="the unique test of the staging model",
                        continues="the staging model is generated; its key test waits for the answer" if not unique else
                        f"{unique[0].name} is used as the key meanwhile")
        if chosen is not None:  # answered: the chosen column, or none (a combination a human names)
            return profile.column(options[chosen].label.split(" ")[0]) if chosen < len(options) - 1 else None
        return unique[0] if unique else None
    declared = sorted([c for c in profile.columns if snake(c.name) in preferred or c.required and rank(c)[0] == 0], key=rank)
    if declared:
        c = declared[0]
        done.append(f"grain: {c.name} is the API's identifier (declared, not measured) -> unique, not_null")
        chosen = decide(EscalationKind.CONTEXT_GAP, "grain", f"Is {c.name} unique per row of {profile.table} once loaded?",
                        [EscalationOption(label=f"{c.name} (declared id)", rule=f"{profile.table} has one row per {c.name}"),
                         EscalationOption(label="no: the loader appends versions (name the grain in the answer)")],
                        0, "named like the API's identifier", blocking="nothing",
                        continues=f"the unique test on {c.name} runs once data arrives")
        return None if chosen == 1 else c
    return None


def _loaded_at(cols: list[ColumnProfile]) -> tuple[ColumnProfile, str] | None:
    """The column that best says when a row arrived, and what it is: ``load`` (the loader's timestamp),
    ``change`` (when the row last changed) or ``event`` (a business event time, the last resort)."""
    by_name: dict[str, ColumnProfile] = {}
    for c in cols:  # as named (_fivetran_synced), and snake_cased (createdAt -> created_at)
        if c.kind in ("timestamp", "date"):
            by_name.setdefault(c.name.lower(), c)
            by_name.setdefault(snake(c.name), c)
    load = [by_name[n] for n in LOADED_AT_NAMES if n in by_name] + [c for n, c in by_name.items() if LOADED_AT.search(n)]
    if load:
        return load[0], "load"
    for names, what in ((CHANGED_AT_NAMES, "change"), (EVENT_AT_NAMES, "event")):
        found = next((by_name[n] for n in names if n in by_name), None)
        if found is not None:
            return found, what
    return None


def _lag_hours(latest: Any, now: datetime | None) -> float | None:
    if not isinstance(latest, datetime):
        return None
    now = now or (datetime.now(latest.tzinfo) if latest.tzinfo else datetime.now())
    if latest.tzinfo and not now.tzinfo:
        now = now.replace(tzinfo=latest.tzinfo)
    return max(0.0, (now - latest).total_seconds() / 3600)


def _foreign_keys(manifest: Manifest, exclude: str) -> dict[str, tuple[str, str]]:
    """Column name -> (ref/source expression, column) for every column with a unique test (models first)."""
    out: dict[str, tuple[str, str]] = {}
    for node in sorted(manifest.raw_tests(), key=lambda t: t.get("name", "")):
        meta = node.get("test_metadata") or {}
        col = node.get("column_name") or (meta.get("kwargs") or {}).get("column_name")
        if meta.get("name") != "unique" or not col:
            continue
        parents = (node.get("depends_on") or {}).get("nodes") or []
        if not parents or parents[0] not in manifest.nodes:
            continue
        parent = manifest.nodes[parents[0]]
        if parent.name == exclude:
            continue
        expr = (f"source('{parent.raw.get('source_name')}', '{parent.name}')" if parent.is_source else f"ref('{parent.name}')")
        if col.lower() not in out or not parent.is_source:
            out[col.lower()] = (expr, col)
    return out


def _describe(name: str, c: ColumnProfile, key: ColumnProfile | None, fks: dict[str, tuple[str, str]], rows: int | None) -> str:
    if c is key:
        return "Primary key: one row per value."
    if name in fks:
        return f"Foreign key to {fks[name][0]}.{fks[name][1]}."
    if c.kind == "timestamp":
        return f"{name.replace('_', ' ').capitalize()} (timestamp)."
    if c.top_values:
        return f"One of {', '.join(v for v, _ in c.top_values[:8])}."
    return f"{name.replace('_', ' ').capitalize()}."


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120, default_flow_style=False)


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())
