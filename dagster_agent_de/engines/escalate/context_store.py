"""Business context the engines consult: rules in the state store, over a committed base layer.

Answers to escalations become rules in the state store (together with the answer, in one
transaction). A file ``agent_de_context.yml`` committed in the dbt project is the base layer
under them, reviewed in pull requests like code; ``agent-de context export`` writes the merged
rules into that file for such a pull request::

    rules:
      - id: R-refunds-negative
        rule: "Refunds are negative charges"
        applies_to: [stg_stripe_charges.amount]
        suppresses: [currency_mixing]      # optional: only these patterns are explained
        source: ESC-12                     # the escalation that decided it (or "hand-written")
        decided_by: finance@shop.example
        at: 2026-11-27T10:00:00Z

A committed rule and a stored answer with the same id that say different things become an
escalation (the stored answer applies until a human decides), never a silent override. A
malformed file never means "no rules": the valid rules of the file (or, if none can be read, the
last good version the store remembers) still apply, and :attr:`ContextRules.error` names the file
and line.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from dagster_agent_de.core.context import ContextRule
from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.errors import SpecError

__all__ = ["CONTEXT_FILE", "ContextRule", "ContextRules", "export_rules", "load_rules", "parse_rules"]

CONTEXT_FILE = "agent_de_context.yml"
_BASE_FLAG = "context_base:"
CONFLICT_PATTERN = "context_conflict:"


class ContextRules(BaseModel):
    rules: list[ContextRule] = Field(default_factory=list)
    path: Path | None = None
    error: str | None = None
    """The committed file is malformed (file and line); ``rules`` are the ones that could still be read."""
    conflicts: list[str] = Field(default_factory=list)
    """Ids whose committed rule and stored answer disagree (each raised as an escalation)."""
    escalations: list[str] = Field(default_factory=list)

    def notes(self) -> list[str]:
        """What a report must say about its context (empty when all is well)."""
        out = []
        if self.error:
            out.append(f"context file is malformed, running on the {len(self.rules)} rule(s) that could be read: "
                       f"{self.error}")
        if self.conflicts:
            out.append(f"committed and stored rules disagree for {', '.join(self.conflicts)}; the stored answers apply "
                       f"until decided ({', '.join(self.escalations) or 'escalation open'})")
        return out


def _line_of(text: str, index: int) -> int | None:
    """1-based line of the ``index``-th item under ``rules:``, from the YAML node marks."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for key, value in root.value:
        if getattr(key, "value", None) == "rules" and isinstance(value, yaml.SequenceNode) and index < len(value.value):
            return int(value.value[index].start_mark.line) + 1
    return None


def _parse(text: str, where: str) -> tuple[list[ContextRule], list[str], bool]:
    """(valid rules, problems, whether the file could be read at all)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        return [], [f"{where}:{line} is not valid YAML ({getattr(e, 'problem', e)})"], False
    if data is None:
        return [], [], True
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        return [], [f"{where}: expected a mapping with a `rules:` list, found {type(data).__name__} "
                    f"{json.dumps(data, default=str)[:40]}"], False
    rules: list[ContextRule] = []
    problems: list[str] = []
    for i, item in enumerate(data.get("rules") or []):
        line_no = _line_of(text, i)
        at = f"{where}:{f' line {line_no}' if line_no else ''} rule #{i + 1}"
        if not isinstance(item, dict):
            problems.append(f"{at}: expected a mapping with id and rule, found {json.dumps(item, default=str)[:40]}")
            continue
        try:
            rule = ContextRule.model_validate(item)
        except ValidationError as e:
            problems.append(f"{at}: " + "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()))
            continue
        if any(r.id == rule.id for r in rules):
            problems.append(f"{at}: duplicate rule id {rule.id}")
            continue
        rules.append(rule)
    return rules, problems, True


def parse_rules(text: str, path: Path | None = None) -> list[ContextRule]:
    """Parse the file's text strictly; :class:`SpecError` names the file and line of the first problem."""
    rules, problems, _ = _parse(text, str(path or CONTEXT_FILE))
    if problems:
        raise SpecError(problems[0])
    return rules


def _base_layer(path: Path, state: StateStore) -> tuple[list[ContextRule], str | None]:
    """The committed rules, and the problem with the file if any (then the rules that could be read)."""
    if not path.exists():
        return [], None
    flag = _BASE_FLAG + str(path.resolve())
    rules: list[ContextRule]
    try:
        text = path.read_text()
    except OSError as e:
        problems, rules, readable = [f"{path}: cannot be read ({e.strerror})"], [], False
    else:
        rules, problems, readable = _parse(text, str(path))
    if not problems:
        remembered = json.dumps([r.model_dump(mode="json") for r in rules], sort_keys=True)
        if state.get_flag(flag) != remembered:
            state.set_flag(flag, remembered)
        return rules, None
    if not readable:  # nothing could be read: the last good version of the file, as the store remembers it
        last = state.get_flag(flag)
        if last:
            rules = [ContextRule.model_validate(r) for r in json.loads(last)]
    return rules, "; ".join(problems)


def _conflict_escalation(committed: ContextRule, stored: ContextRule, path: Path) -> Escalation:
    digest = hashlib.sha256(committed.model_dump_json().encode() + stored.model_dump_json().encode()).hexdigest()[:8]
    return Escalation(
        id="", kind=EscalationKind.CONTEXT_GAP,
        decision=(f"Rule {committed.id} in {path.name} says {committed.rule!r} (on {', '.join(committed.applies_to) or '-'}); "
                  f"the answer stored from {stored.source} by {stored.decided_by or 'unknown'} says {stored.rule!r} "
                  f"(on {', '.join(stored.applies_to) or '-'}). Which holds?"),
        options=[
            EscalationOption(label="The committed rule holds", consequence=f"the stored answer is replaced by {path.name}'s rule",
                             agent_action="record_rule", rule=committed.rule, suppresses=committed.suppresses or []),
            EscalationOption(label="The stored answer holds", agent_action="none",
                             consequence=f"run `agent-de context export` and commit {path.name} so they agree"),
        ],
        recommendation=None, blocking="nothing: the stored answer applies meanwhile",
        continues="everything; investigations use the stored answer",
        applies_to=committed.applies_to, finding_pattern=f"{CONFLICT_PATTERN}{committed.id}@{digest}",
    )


def load_rules(project_dir: Path, state: StateStore) -> ContextRules:
    """The rules in force: the committed file as the base layer, the store's answers over it.

    A disagreement between a committed rule and a stored answer (same id, different meaning)
    is raised as an escalation, once.
    """
    from dagster_agent_de.engines.escalate.raising import raise_decisions

    path = project_dir / CONTEXT_FILE
    base, error = _base_layer(path, state)
    stored = {r.id: r for r in state.rules()}
    merged = [stored.get(r.id, r) for r in base] + [r for r in stored.values() if r.id not in {b.id for b in base}]
    clashes = [(r, stored[r.id]) for r in base if r.id in stored and not r.same_meaning(stored[r.id])]
    asking: list[str] = []
    if clashes:
        raise_decisions(state, [_conflict_escalation(c, s, path) for c, s in clashes])
        prefixes = tuple(f"{CONFLICT_PATTERN}{c.id}@" for c, _ in clashes)
        asking = [e.id for e in state.escalations()
                  if e.state.value == "open" and (e.finding_pattern or "").startswith(prefixes)]
    return ContextRules(rules=merged, path=path, error=error, conflicts=[c.id for c, _ in clashes], escalations=asking)


def export_rules(project_dir: Path, state: StateStore, output: Path | None = None) -> tuple[Path, int]:
    """Write the rules in force to ``output`` (default: the project's ``agent_de_context.yml``) for review.

    Refuses to overwrite a malformed committed file (its problem is named), so nothing is lost.
    """
    current = load_rules(project_dir, state)
    if current.error:
        raise SpecError(f"not exporting over a malformed context file: {current.error}")
    target = output or project_dir / CONTEXT_FILE
    body: dict[str, Any] = {"rules": [r.model_dump(mode="json", exclude_none=True) for r in current.rules]}
    text = ("# Business context the agent uses; reviewed like code. Written by `agent-de context export`.\n"
            + yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    parse_rules(text, target)  # never write a file we could not read back
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(target)
    return target, len(current.rules)
