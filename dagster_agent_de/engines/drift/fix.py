"""Proposed fixes for renames and retypes: keep downstream columns stable in the staging model."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption
from dagster_agent_de.engines.drift.models import SchemaChange
from dagster_agent_de.manifest import Manifest


def _unified(path: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}"
    ))


def _rewrite_sql(sql: str, column: str, replacement: str, alias_bare: bool, inline: str | None = None) -> str:
    """Replace reads of ``column``; a bare projection becomes ``replacement as column``.

    ``inline`` (default ``replacement``) is what a read inside an expression becomes, e.g. a
    parenthesised conversion.
    """
    out = []
    word = re.compile(rf"(?<![\w.\"]){re.escape(column)}(?![\w\"])", re.I)
    alias = re.compile(rf"\bas\s+{re.escape(column)}\b", re.I)
    for line in sql.splitlines(keepends=True):
        stripped = line.strip().rstrip(",").strip()
        if alias_bare and stripped.lower() == column.lower():
            line = line.replace(stripped, f"{replacement} as {column}", 1)
        elif word.search(line):
            # keep `as column` aliases; rewrite the reads
            protected = alias.sub(lambda m: m.group(0).replace(column, "\0"), line)
            protected = word.sub(lambda _: inline or replacement, protected)
            line = protected.replace("\0", column)
        out.append(line)
    return "".join(out)


def propose_fix(change: SchemaChange, manifest: Manifest) -> str | None:
    """A unified diff to the model(s) reading the source directly, plus the sources YAML change."""
    if change.kind not in ("column_renamed", "type_changed") or not change.column:
        return None
    if change.kind == "type_changed" and change.type_change == "widening" and not change.unit_scale:
        return None
    sources = [n for n in manifest.sources() if n.relation_name and
               n.relation_name.replace('"', "").lower() == change.relation.lower()]
    diffs = []
    for src in sources:
        for child_uid in manifest.children(src.unique_id):
            child = manifest.nodes[child_uid]
            path = manifest.model_file(child)
            if path is None or not path.exists():
                continue
            before = path.read_text()
            if change.unit_scale:  # renamed or in place: back to the old units under the old name
                conv = unit_conversion(str(change.new_column or change.column), change.unit_scale)
                after = _rewrite_sql(before, change.column, conv, alias_bare=True, inline=f"({conv})")
            elif change.kind == "column_renamed":
                after = _rewrite_sql(before, change.column, str(change.new_column), alias_bare=True)
            else:
                after = _cast_back(before, change.column, str(change.old_type))
            if after != before:
                diffs.append(_unified(child.raw["original_file_path"], before, after))
        if change.kind == "column_renamed" and manifest.project_dir is not None:
            yml = manifest.project_dir / src.raw.get("original_file_path", "")
            if yml.is_file():
                text = yml.read_text()
                new = _rename_in_sources_yml(text, src.raw["source_name"], src.name, change.column, str(change.new_column))
                if new != text:
                    diffs.append(_unified(src.raw["original_file_path"], text, new))
    return "".join(diffs) or None


def _cast_back(sql: str, column: str, old_type: str) -> str:
    r"""Reads of a retyped ``column`` cast back to ``old_type``, except the reads a cast already takes: there the
    outer cast decides the type dbt materializes, so a cast inside it would change nothing.

    >>> _cast_back("select cast(total as decimal(12, 2)) as total, id", "total", "DOUBLE")
    'select cast(total as decimal(12, 2)) as total, id'
    >>> _cast_back("select\n    total,\n    total * 2 as double_total", "total", "DOUBLE")
    'select\n    cast(total as DOUBLE) as total,\n    cast(total as DOUBLE) * 2 as double_total'
    """
    col = re.escape(column)
    operand = re.compile(rf"(?i)(\b(?:try_)?cast\s*\(\s*){col}(?=\s+as\b)|(?<![\w.\"]){col}(?=\s*::)")
    held = operand.sub(lambda m: (m.group(1) or "") + "\x02", sql)  # the cast operands, out of the rewrite's reach
    return _rewrite_sql(held, column, f"cast({column} as {old_type})", alias_bare=True).replace("\x02", column)


def unit_conversion(column: str, scale: int) -> str:
    """The expression that gives back the old units of ``column`` (= old * 10**scale).

    >>> unit_conversion("amount_cents", 2), unit_conversion("amount", -3)
    ('amount_cents / 100.0', 'amount * 1000')
    """
    return f"{column} / {10 ** scale}.0" if scale > 0 else f"{column} * {10 ** -scale}"


def replacement_escalation(change: SchemaChange, changes: list[SchemaChange], manifest: Manifest) -> Escalation:
    """A dropped column that models read: which column replaces it is a context gap, not a guess.

    The columns that appeared in the same table are the options (with what their values showed),
    plus "none: the source no longer has it".
    """
    from dagster_agent_de.engines.escalate.raising import owner_of

    added = [c for c in changes if c.kind == "column_added" and c.relation == change.relation]
    shown = {e.new_column.lower(): e for e in change.evidence}
    what = f"{change.source or change.relation}.{change.column}"
    readers = ", ".join(i.model for i in change.impacted) or "no model"
    options = []
    for a in added:
        ev = shown.get(str(a.column).lower())
        options.append(EscalationOption(
            label=f"{a.column} replaces {change.column}",
            evidence=f"{a.column} ({a.new_type}): " + (ev.describe() if ev else "no value comparison"),
            consequence=f"the models reading {change.column} ({readers}) are changed to read {a.column}",
            agent_action="record_rule",
            rule=f"{what} is replaced by {a.column}" + (f" ({ev.describe()})" if ev else ""),
        ))
    options.append(EscalationOption(
        label=f"nothing replaces {change.column}: the source dropped it",
        consequence=f"{readers} must stop reading {change.column} (a model change, reviewed)", agent_action="record_rule",
        rule=f"{what} was dropped by the source on purpose",
    ))
    appeared = ", ".join(str(a.column) for a in added)
    decision = (f"{what} disappeared" + (f" and {appeared} appeared" if appeared else "")
                + f"; {readers} read it. Which column replaces it?")
    source = change.source or change.relation
    owner = owner_of(manifest, change.source)
    return Escalation(
        id="new", kind=EscalationKind.CONTEXT_GAP, decision=decision, options=options, recommendation=None,
        recommendation_reason="the values do not show that any new column is the old one renamed",
        blocking=f"builds of {readers}", continues="every other source and model", owner=owner,
        asset=source, applies_to=[what], finding_pattern=f"schema_drift:column_dropped:{change.column}",
        check="schema_drift",
    )


def unit_change_escalation(change: SchemaChange, manifest: Manifest) -> Escalation:
    """A column whose values moved units under the same name (dollars to cents): whether the source meant it is
    the owner's to say (a context gap). The proposed conversion is the answer if it did; the loader's fix if not."""
    from dagster_agent_de.core.models import utcnow
    from dagster_agent_de.engines.drift.models import unit_words
    from dagster_agent_de.engines.escalate.raising import owner_of

    scale = int(change.unit_scale or 0)
    what = f"{change.source or change.relation}.{change.column}"
    readers = ", ".join(i.model for i in change.impacted) or "no model"
    shown = "; ".join(e.describe() for e in change.evidence)
    conv = unit_conversion(str(change.column), scale)
    units = unit_words(scale)
    options = [
        EscalationOption(
            label=f"intended: {change.column} holds its old values {units.split(':')[0]} from now on",
            evidence=f"{change.old_type} -> {change.new_type}, {shown}",
            consequence=f"the models reading {change.column} ({readers}) convert it back ({conv}): the proposed diff, "
                        "reviewed", agent_action="record_rule",
            rule=f"{what} holds its old values {units.split(':')[0]} since {utcnow():%Y-%m-%d} ({change.new_type}); "
                 f"readers convert with {conv}"),
        EscalationOption(
            label="not intended: the loader must write the old units again",
            consequence=f"the source's owners fix the loader; the readers ({readers}) stay as they are and read "
                        "wrong values until then",
            agent_action="record_rule", rule=f"{what} must hold its values in the old units ({change.old_type})"),
    ]
    source = change.source or change.relation
    return Escalation(
        id="new", kind=EscalationKind.CONTEXT_GAP,
        decision=f"{what} changed from {change.old_type} to {change.new_type} and its values are {units} "
                 f"({readers} read it). Is the unit change intended?",
        options=options, recommendation=None,
        recommendation_reason="the values show the units moved; whether the source meant it is its owner's to say",
        blocking=f"builds of {readers}", continues="every other source and model", owner=owner_of(manifest, change.source),
        asset=source, applies_to=[what], finding_pattern=f"schema_drift:unit_change:{change.column}",
        check="schema_drift", fix_diff=change.proposed_fix or "",
    )


def _rename_in_sources_yml(text: str, source: str, table: str, old: str, new: str) -> str:
    """Rename ``- name: old`` under the table's ``columns:`` (line-based, keeps comments)."""
    lines = text.splitlines(keepends=True)
    in_source = in_table = False
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)- name:\s*(\S+)\s*$", line)
        if not m:
            continue
        indent, name = len(m.group(1)), m.group(2).strip("'\"")
        if indent <= 2:
            in_source, in_table = name == source, False
        elif in_source and indent <= 6:
            in_table = name == table
        elif in_source and in_table and name.lower() == old.lower():
            lines[i] = line.replace(m.group(2), new, 1)
            break
    return "".join(lines)


__all__ = ["Path", "propose_fix", "replacement_escalation", "unit_change_escalation", "unit_conversion"]
