"""Diff two snapshots into typed changes, rename-aware.

A rename is a drop and an add in the same table that are the same column. When both tables
were fingerprinted the values decide (see ``fingerprint.py``): the same values make a rename,
values times ``10**k`` a rename with a unit change, different values a drop and an add whatever
the names say. A column whose type changed in place is compared with itself the same way, so a
unit change under the same name (dollars as DOUBLE to cents as BIGINT) is told from a plain retype. Otherwise the call rests on type, position and name similarity. Each pairing gets
a confidence; below ``RENAME_THRESHOLD`` the two stay a drop and an add. Reordering alone is not drift.
"""

from __future__ import annotations

import difflib
import re

from dagster_agent_de.engines.drift.models import (
    ChangeKind,
    ColumnSchema,
    RenameEvidence,
    SchemaChange,
    Snapshot,
    TableSchema,
    TypeChange,
)

RENAME_THRESHOLD = 0.6

_INT_RANK = {"TINYINT": 1, "SMALLINT": 2, "INTEGER": 3, "INT": 3, "BIGINT": 4, "HUGEINT": 5}
_FLOAT_RANK = {"REAL": 1, "FLOAT": 2, "FLOAT4": 1, "FLOAT8": 2, "DOUBLE": 2, "DOUBLE PRECISION": 2}
_TEXT = ("VARCHAR", "TEXT", "STRING", "CHAR", "CHARACTER VARYING")
_TIME_RANK = {"DATE": 1, "TIMESTAMP": 2, "TIMESTAMP_NTZ": 2, "DATETIME": 2, "TIMESTAMP WITH TIME ZONE": 3, "TIMESTAMPTZ": 3, "TIMESTAMP_TZ": 3, "TIMESTAMP_LTZ": 3}


def _parse(t: str) -> tuple[str, list[int]]:
    m = re.match(r"^\s*([A-Z_ ]+?)\s*(?:\(([\d,\s]+)\))?\s*$", t.upper())
    if not m:
        return t.upper(), []
    args = [int(x) for x in (m.group(2) or "").split(",") if x.strip()]
    return m.group(1).strip(), args


def classify_type_change(old: str, new: str) -> TypeChange:
    """``widening`` (no value can be lost), ``narrowing`` or ``incompatible``.

    >>> classify_type_change("INTEGER", "BIGINT"), classify_type_change("VARCHAR(10)", "VARCHAR(5)")
    ('widening', 'narrowing')
    >>> classify_type_change("BIGINT", "VARCHAR"), classify_type_change("DECIMAL(10,2)", "DECIMAL(12,2)")
    ('incompatible', 'widening')
    """
    bo, ao = _parse(old)
    bn, an = _parse(new)
    if bo in _INT_RANK and bn in _INT_RANK:
        return "widening" if _INT_RANK[bn] >= _INT_RANK[bo] else "narrowing"
    if bo in _FLOAT_RANK and bn in _FLOAT_RANK:
        return "widening" if _FLOAT_RANK[bn] >= _FLOAT_RANK[bo] else "narrowing"
    if bo in _INT_RANK and bn in _FLOAT_RANK:
        return "widening"
    if bo in _FLOAT_RANK and bn in _INT_RANK:
        return "narrowing"
    numeric = ("DECIMAL", "NUMERIC", "NUMBER")
    if bo in numeric and bn in numeric:
        po, so = (ao + [38, 0])[:2] if ao else (38, 0)
        pn, sn = (an + [38, 0])[:2] if an else (38, 0)
        if len(ao) == 1:
            so = 0
        if len(an) == 1:
            sn = 0
        return "widening" if (pn - sn) >= (po - so) and sn >= so else "narrowing"
    if bo in _INT_RANK and bn in numeric:
        pn, sn = (an + [38, 0])[:2] if an else (38, 0)
        return "widening" if pn - sn >= 19 or (pn - sn) >= {1: 3, 2: 5, 3: 10, 4: 19, 5: 39}[_INT_RANK[bo]] else "narrowing"
    if bo in numeric and bn in _INT_RANK:
        so = ao[1] if len(ao) > 1 else 0
        return "widening" if so == 0 and _INT_RANK[bn] >= 4 else "narrowing"
    if bo in numeric and bn in _FLOAT_RANK:
        return "narrowing"  # exact to approximate
    if bo.startswith(_TEXT) and bn.startswith(_TEXT):
        lo = ao[0] if ao else None
        ln = an[0] if an else None
        if ln is None:
            return "widening"
        if lo is None:
            return "narrowing"
        return "widening" if ln >= lo else "narrowing"
    if bo in _TIME_RANK and bn in _TIME_RANK:
        return "widening" if _TIME_RANK[bn] >= _TIME_RANK[bo] else "narrowing"
    return "incompatible"  # e.g. number -> text: readers doing math or joins on it break


def _name_similarity(a: str, b: str) -> float:
    a, b = a.lower(), b.lower()
    ratio = difflib.SequenceMatcher(None, a, b).ratio()
    ta, tb = set(re.split(r"[_\W]+", a)) - {""}, set(re.split(r"[_\W]+", b)) - {""}
    token = len(ta & tb) / max(len(ta | tb), 1)
    contain = 1.0 if (a in b or b in a) else 0.0
    return max(ratio, token, 0.8 * contain)


def rename_confidence(old: ColumnSchema, new: ColumnSchema) -> float:
    """Confidence from the names alone that ``new`` is ``old`` renamed: type 0.35, position 0.3, name 0.35.

    The values, when fingerprinted, override it (see :func:`_pair`).
    """
    score = 0.0
    if old.data_type == new.data_type:
        score += 0.35
    elif classify_type_change(old.data_type, new.data_type) == "widening":
        score += 0.15
    gap = abs(old.position - new.position)
    score += 0.3 if gap == 0 else 0.2 if gap == 1 else 0.0
    score += 0.35 * _name_similarity(old.name, new.name)
    return round(min(score, 1.0), 3)


def _pair(before: TableSchema, after: TableSchema, d: ColumnSchema, a: ColumnSchema) -> tuple[float, RenameEvidence | None]:
    """Confidence that ``a`` is ``d`` renamed: the values decide when both tables were fingerprinted."""
    names = rename_confidence(d, a)
    if before.fingerprint is None and after.fingerprint is None:
        return names, None
    from dagster_agent_de.engines.drift.fingerprint import compare_columns

    ev = compare_columns(before.fingerprint, d, after.fingerprint, a)
    similarity = _name_similarity(d.name, a.name)
    keyed = ev.keys_compared > 0
    if ev.verdict == "same_values":
        return (round(0.95 + 0.04 * similarity, 3) if keyed else round(max(names, 0.8), 3)), ev
    if ev.verdict == "unit_change":
        return (round(0.9 + 0.05 * similarity, 3) if keyed else round(max(names, 0.75), 3)), ev
    if ev.verdict == "different_values":
        return 0.0, ev  # not a rename, whatever the names say
    return names, ev


def _renames(before: TableSchema, after: TableSchema, dropped: list[ColumnSchema], added: list[ColumnSchema]) -> list[SchemaChange]:
    """Pair dropped and added columns into renames (best first); the rest stay drops and adds, with their evidence."""
    scored = [(*_pair(before, after, d, a), d, a) for d in dropped for a in added]
    scored.sort(key=lambda p: -p[0])
    changes: list[SchemaChange] = []
    used_d: set[str] = set()
    used_a: set[str] = set()
    for conf, ev, d, a in scored:
        if conf < RENAME_THRESHOLD or d.name in used_d or a.name in used_a:
            continue
        used_d.add(d.name)
        used_a.add(a.name)
        changes.append(SchemaChange(
            kind="column_renamed", relation=after.relation, column=d.name, new_column=a.name,
            old_type=d.data_type, new_type=a.data_type, confidence=conf, evidence=[ev] if ev else [],
            unit_scale=ev.scale if ev is not None and ev.verdict == "unit_change" and ev.scale else None,
        ))
    # what the values said about the pairs that were not renames (different, or partly matching)
    left = [(ev, d, a) for _, ev, d, a in scored
            if ev is not None and ev.verdict != "names_only" and d.name not in used_d and a.name not in used_a]
    for d in dropped:
        if d.name not in used_d:
            evidence = [ev for ev, dd, _ in left if dd is d]
            changes.append(SchemaChange(kind="column_dropped", relation=after.relation, column=d.name,
                                        old_type=d.data_type, evidence=evidence))
    for a in added:
        if a.name not in used_a:
            evidence = [ev for ev, _, aa in left if aa is a]
            changes.append(SchemaChange(kind="column_added", relation=after.relation, column=a.name,
                                        new_type=a.data_type, evidence=evidence))
    return changes


def _retype_evidence(before: TableSchema, after: TableSchema, o: ColumnSchema, n: ColumnSchema) -> RenameEvidence | None:
    """What the values say about a column whose type changed in place: the same values, the same times
    ``10**k`` (a unit change under the same name: dollars as DOUBLE to cents as BIGINT), or different.
    ``None`` when there is nothing to compare by (no fingerprint on either side, or names only)."""
    if before.fingerprint is None or after.fingerprint is None:
        return None
    from dagster_agent_de.engines.drift.fingerprint import compare_columns

    ev = compare_columns(before.fingerprint, o, after.fingerprint, n)
    return None if ev.verdict == "names_only" else ev


def diff_snapshots(old: Snapshot, new: Snapshot) -> list[SchemaChange]:
    """Typed changes from ``old`` to ``new`` (both keyed by lower-cased relation)."""
    changes: list[SchemaChange] = []
    for key in sorted(set(old.tables) | set(new.tables) | set(new.missing)):
        before, after = old.tables.get(key), new.tables.get(key)
        if before is None and after is not None:
            changes.append(SchemaChange(kind="table_added", relation=after.relation))
            continue
        if before is not None and after is None:
            kind: ChangeKind = "table_missing" if key in new.missing else "table_dropped"
            changes.append(SchemaChange(kind=kind, relation=before.relation))
            continue
        if before is None or after is None:
            continue
        if before is after or (before.signature and before.signature == after.signature):
            continue  # unchanged table: the warehouse-side signature says so
        ob, nb = before.by_name(), after.by_name()
        dropped = [ob[n] for n in ob if n not in nb]
        added = [nb[n] for n in nb if n not in ob]
        changes += _renames(before, after, dropped, added)
        for name in sorted(set(ob) & set(nb)):
            o, n = ob[name], nb[name]
            if o.data_type != n.data_type:
                ev = _retype_evidence(before, after, o, n)
                changes.append(SchemaChange(
                    kind="type_changed", relation=after.relation, column=n.name, old_type=o.data_type,
                    new_type=n.data_type, type_change=classify_type_change(o.data_type, n.data_type),
                    evidence=[ev] if ev else [],
                    unit_scale=ev.scale if ev is not None and ev.verdict == "unit_change" and ev.scale else None,
                ))
            if o.nullable != n.nullable:
                changes.append(SchemaChange(
                    kind="nullability_changed", relation=after.relation, column=n.name,
                    nullable_from=o.nullable, nullable_to=n.nullable,
                ))
    return changes
