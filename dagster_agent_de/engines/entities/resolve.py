"""Find records of one model that are the same entity, score each pair with explained rules, merge
only at high confidence, hand the uncertain band to a human.

Declared on the model, where dbt users keep config::

    config:
      meta:
        agent_de:
          entities:
            key: customer_id
            match: {email: email, name: full_name, phone: phone}   # any of the three
            auto_merge_at: 0.95     # merged without asking
            review_at: 0.8          # asked about (a context gap), below: ignored

Candidate pairs come from equi-joins in the warehouse on blocking keys (normalized e-mail, phone
digits, name prefix): never a cross join, never the table in Python; at most ``MAX_PAIRS`` come back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption, validation_problems
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.engines.entities.similarity import jaro_winkler
from dagster_agent_de.errors import SpecError
from dagster_agent_de.manifest import Manifest

MAX_PAIRS = 100_000
PATTERN = "entity_match"  # a rule suppressing it for a pair: "different entities", keep apart
CONFIRMED = "entity_review"  # a rule suppressing it for a pair: "same entity", merge without asking again


class EntitySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    key: str
    match: dict[str, str] = Field(description="email/name/phone -> column")
    auto_merge_at: float = Field(default=0.95, ge=0.5, le=1.0)
    review_at: float = Field(default=0.8, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> EntitySpec:
        unknown = set(self.match) - {"email", "name", "phone"}
        if unknown:
            raise ValueError(f"match: unknown attribute(s) {sorted(unknown)}; use email, name and/or phone")
        if not ({"email", "phone"} & set(self.match)):
            raise ValueError("match: needs email or phone (a name alone never identifies an entity)")
        if self.review_at >= self.auto_merge_at:
            raise ValueError(f"review_at ({self.review_at}) must be below auto_merge_at ({self.auto_merge_at})")
        return self


def specs_from_manifest(manifest: Manifest) -> list[EntitySpec]:
    out = []
    for node in manifest.models():
        raw = node.agent_de_meta.get("entities")
        if raw is None:
            continue
        try:
            out.append(EntitySpec.model_validate({"model": node.name, **raw}))
        except ValidationError as e:
            raise SpecError(f"model {node.name}: meta.agent_de.entities is invalid: {validation_problems(e)}") from e
        except TypeError as e:
            raise SpecError(f"model {node.name}: meta.agent_de.entities must be a mapping") from e
    return out


@dataclass(frozen=True)
class EntityPair:
    key_a: Any
    key_b: Any
    confidence: float
    reason: str

    @property
    def ref(self) -> str:
        return f"{self.key_a}~{self.key_b}"


@dataclass
class EntityResolution:
    spec: EntitySpec
    rows: int
    merged: list[EntityPair] = field(default_factory=list)
    review: list[EntityPair] = field(default_factory=list)
    entity_map: dict[Any, Any] = field(default_factory=dict)  # key -> entity id (the smallest key of its cluster)
    truncated: bool = False
    statement: str = ""
    notes: list[str] = field(default_factory=list)

    def csv(self) -> str:
        lines = [f"{self.spec.key},entity_id"]
        lines += [f"{k},{v}" for k, v in sorted(self.entity_map.items(), key=lambda kv: str(kv[0]))]
        return "\n".join(lines) + "\n"


def _norm_email(col: str) -> str:
    # lower, trim, drop a +tag before the @: 'Ann+shop@X.com ' and 'ann@x.com' block together
    return f"regexp_replace(lower(trim({col})), '\\+[^@]*@', '@')"


MAX_BLOCK = 20
"""A blocking value shared by more records than this ('' or noreply@...) identifies nobody: not used to match."""


def _base_sql(spec: EntitySpec, relation: str) -> str:
    m = spec.match
    cols = [f"{spec.key} as k"]
    cols.append(f"{_norm_email(m['email'])} as e" if "email" in m else "cast(null as varchar) as e")
    cols.append(f"regexp_replace(lower(trim({m['name']})), '\\s+', ' ', 'g') as n" if "name" in m else "cast(null as varchar) as n")
    # the last 10 digits: '+1 (555) 010-1000' and '555 010 1000' are one number; fewer than 7 is no number
    digits = f"regexp_replace({m['phone']}, '[^0-9]', '', 'g')" if "phone" in m else ""
    cols.append(f"case when length({digits}) >= 7 then right({digits}, 10) end as p" if "phone" in m else "cast(null as varchar) as p")
    return f"""base0 as (select {', '.join(cols)} from {relation} where {spec.key} is not null),
     e_big as (select e, count(*) as c from base0 where e is not null group by e having count(*) > {MAX_BLOCK}),
     p_big as (select p, count(*) as c from base0 where p is not null group by p having count(*) > {MAX_BLOCK})"""


def _stats_sql(spec: EntitySpec, relation: str) -> str:
    """Rows and the oversized blocks (counts only: the shared values themselves may be personal data)."""
    return f"""with {_base_sql(spec, relation)}
select (select count(*) from base0) as n_rows,
       (select count(*) from e_big) as big_email_blocks, (select coalesce(max(c), 0) from e_big) as largest_email_block,
       (select count(*) from p_big) as big_phone_blocks, (select coalesce(max(c), 0) from p_big) as largest_phone_block"""


def _pairs_sql(spec: EntitySpec, relation: str, name_sim_in_sql: bool = True) -> str:
    """Candidate pairs; ``name_sim_in_sql=False`` (an engine without Jaro-Winkler) returns both names
    instead of their similarity, and every candidate pair (the rules are then applied in Python)."""
    blocks = []
    if "email" in spec.match:
        blocks.append("select a.k as k1, b.k as k2 from base a join base b on a.e = b.e and a.k < b.k")
    if "phone" in spec.match:
        blocks.append("select a.k as k1, b.k as k2 from base a join base b on a.p = b.p and a.k < b.k")
    # without the similarity in SQL, both names come back (one column: the rows keep their shape)
    sim = "coalesce(jaro_winkler_similarity(a.n, b.n), 0)" if name_sim_in_sql else "a.n || chr(31) || b.n"
    worth = _worth_scoring(spec) if name_sim_in_sql else "true"
    return f"""
with {_base_sql(spec, relation)},
     base as (select k, n,
                     case when e in (select e from e_big) then null else e end as e,
                     case when p in (select p from p_big) then null else p end as p
              from base0),
     cand as ({' union '.join(blocks)}),
     scored as (
        select c.k1, c.k2, coalesce(a.e = b.e, false) as same_email, coalesce(a.p = b.p, false) as same_phone,
               {sim} as name_sim
        from cand c join base a on a.k = c.k1 join base b on b.k = c.k2
     )
select k1, k2, same_email, same_phone, name_sim from scored
where {worth}
order by k1, k2
limit {MAX_PAIRS + 1}
""".strip()


RULES: tuple[tuple[str, float, float, str], ...] = (
    # shared identifier, least name similarity (Jaro-Winkler), confidence, why; first match wins
    ("email", 0.95, 0.99, "same e-mail, same name"),
    ("phone", 0.95, 0.96, "same phone, same name"),
    ("email", 0.85, 0.92, "same e-mail, names close but not the same"),
    ("email", 0.0, 0.90, "same e-mail but different names: a shared mailbox?"),
    ("phone", 0.85, 0.85, "same phone, names close but not the same: family members?"),
    ("phone", 0.0, 0.60, "same phone only"),
)
NO_NAME_RULES: tuple[tuple[str, float, float, str], ...] = (("email", 0.0, 0.97, "same e-mail"), ("phone", 0.0, 0.60, "same phone only"))


def _rules(has_name: bool) -> tuple[tuple[str, float, float, str], ...]:
    return RULES if has_name else NO_NAME_RULES


def score(same_email: bool, same_phone: bool, name_sim: float, has_name: bool) -> tuple[float, str]:
    """The rule table: confidence that two records are one entity, and why. Conservative: near-identical
    names are needed to merge on their own ('Maria Garcia' / 'Mario Garcia' sharing a phone are asked about).

    >>> score(True, False, 0.97, True), score(True, False, 0.4, True)[0], score(False, True, 0.91, True)[0]
    ((0.99, 'same e-mail, same name (0.97)'), 0.9, 0.85)
    """
    shared = {"email": same_email, "phone": same_phone}
    for ident, least, confidence, why in _rules(has_name):
        if shared[ident] and name_sim >= least:
            return confidence, why + (f" ({name_sim:.2f})" if has_name else "")
    return 0.0, "no shared identifier"


def _worth_scoring(spec: EntitySpec) -> str:
    """SQL for "some rule at or above review_at can match": pairs below it never leave the warehouse."""
    conds = [f"(same_{ident} and name_sim >= {least})" for ident, least, conf, _ in _rules("name" in spec.match)
             if conf >= spec.review_at and ident in spec.match]
    return " or ".join(conds) or "false"


def resolve_entities(spec: EntitySpec, manifest: Manifest, warehouse: Warehouse, rules: list[Any] | None = None) -> EntityResolution:
    """Score candidate pairs; merge (union-find) at ``auto_merge_at``; return the review band apart.

    A context rule that ``suppresses`` ``entity_match`` for ``model:keyA~keyB`` (a human said
    "different") keeps that pair apart and out of review.
    """
    node = manifest.find(spec.model)
    if not node.relation_name:
        raise SpecError(f"model {spec.model} has no relation in the warehouse (is it ephemeral?)")
    if warehouse.dialect not in ("duckdb", "postgres"):
        raise SpecError(f"entity resolution is not on {warehouse.dialect} yet: its blocking SQL (regexp_replace with "
                        "flags) is written for DuckDB and PostgreSQL")
    in_sql = warehouse.capabilities.jaro_winkler  # else (PostgreSQL) names are scored here, the same way
    def answered(what: str) -> set[str]:
        return {a for r in rules or [] if what in (getattr(r, "suppresses", None) or []) for a in getattr(r, "applies_to", [])}

    apart, confirmed = answered(PATTERN), answered(CONFIRMED)
    stats = warehouse.query(_stats_sql(spec, node.relation_name), rationale=f"rows and oversized match blocks of {spec.model}").folded().one()
    sql = _pairs_sql(spec, node.relation_name, in_sql)
    res = warehouse.query(sql, rationale=f"candidate duplicate records of {spec.model} by {', '.join(spec.match)}",
                          max_rows=MAX_PAIRS + 1)
    out = EntityResolution(spec=spec, rows=int(stats["n_rows"]), truncated=res.row_count > MAX_PAIRS, statement=sql)
    for what in ("email", "phone"):
        if stats[f"big_{what}_blocks"]:
            out.notes.append(f"{stats[f'big_{what}_blocks']} {what} value(s) shared by more than {MAX_BLOCK} records each "
                             f"(largest: {stats[f'largest_{what}_block']:,}) identify nobody and were not used to match")
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for k1, k2, same_email, same_phone, name_sim in res.rows[:MAX_PAIRS]:
        if not in_sql:
            name_sim = jaro_winkler(*name_sim.split(chr(31), 1)) if name_sim is not None else 0.0
        conf, why = score(bool(same_email), bool(same_phone), float(name_sim or 0), "name" in spec.match)
        pair = EntityPair(k1, k2, conf, why)
        if f"{spec.model}:{pair.ref}" in apart:
            continue
        if f"{spec.model}:{pair.ref}" in confirmed:
            pair = EntityPair(k1, k2, 1.0, f"confirmed the same entity by a human ({why})")
        if pair.confidence >= spec.auto_merge_at:
            out.merged.append(pair)
            ra, rb = find(k1), find(k2)
            if ra != rb:
                parent[max(ra, rb, key=str)] = min(ra, rb, key=str)
        elif pair.confidence >= spec.review_at:
            out.review.append(pair)
    out.entity_map = {k: find(k) for k in list(parent)}  # only keys of merged pairs are in parent
    return out


def pair_escalation(spec: EntitySpec, pair: EntityPair, owner: str | None = None) -> Escalation:
    ref = f"{spec.model}:{pair.ref}"
    return Escalation(
        id="new", kind=EscalationKind.CONTEXT_GAP, owner=owner, asset=spec.model, finding_pattern=f"{PATTERN}:{pair.ref}",
        decision=f"Are {spec.key} {pair.key_a} and {pair.key_b} of {spec.model} the same entity? ({pair.reason}, "
                 f"confidence {pair.confidence:.0%}, below the {spec.auto_merge_at:.0%} that merges automatically)",
        options=[
            EscalationOption(label="same entity: merge them", evidence=pair.reason, agent_action="record_rule",
                             rule=f"{ref} are the same entity", suppresses=[CONFIRMED],
                             consequence="merged in the next entity map, not asked again"),
            EscalationOption(label="different entities: keep apart", evidence=pair.reason, agent_action="record_rule",
                             rule=f"{ref} are different entities", suppresses=[PATTERN],
                             consequence="never proposed again"),
        ],
        recommendation=None, recommendation_reason="the shared identifier is real, the names disagree",
        blocking=f"merging {pair.key_a} and {pair.key_b}", continues="both stay separate entities",
        applies_to=[ref],
    )


MAX_ESCALATIONS = 20
"""Review-band pairs raised per model and run; the rest wait in the entity map's review list."""


def resolve_and_record(
    specs: list[EntitySpec], manifest: Manifest, warehouse: Warehouse, *, rules: list[Any], store: StateStore, out_dir: Any,
) -> list[tuple[EntityResolution, list[Escalation]]]:
    """Resolve every spec, keep the entity map in the state store ``store`` (artifact ``entity_map``) and write it
    to ``<out_dir>/<model>.csv`` with ``<model>__review.csv``, and raise the review band as context gaps (at most
    ``MAX_ESCALATIONS`` per model)."""
    from dagster_agent_de.engines.escalate.raising import owner_of, raise_decisions

    out = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        r = resolve_entities(spec, manifest, warehouse, rules)
        store.put_artifact("entity_map", spec.model, r.csv())
        (out_dir / f"{spec.model}.csv").write_text(r.csv())
        (out_dir / f"{spec.model}__review.csv").write_text(
            f"{spec.key}_a,{spec.key}_b,confidence,reason\n"
            + "".join(f"{p.key_a},{p.key_b},{p.confidence},\"{p.reason}\"\n" for p in r.review))
        owner = owner_of(manifest, spec.model)
        raised = raise_decisions(store, [pair_escalation(spec, p, owner) for p in r.review[:MAX_ESCALATIONS]])
        out.append((r, raised))
    return out
