"""The context store: business rules the engines consult, in ``agent_de_context.yml``.

The file lives in the dbt project, so rules are reviewed in pull requests like code::

    rules:
      - id: R-refunds-negative
        rule: "Refunds are negative charges"
        applies_to: [stg_stripe_charges.amount]
        suppresses: [currency_mixing]      # optional: only these patterns are explained
        source: ESC-12                     # the escalation that decided it (or "hand-written")
        decided_by: finance@shop.example
        at: 2026-11-27T10:00:00Z

Writes are atomic (temp file + rename) and detect concurrent edits (the file's hash must be
the one read), so two answers never lose each other.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dagster_agent_de.core.models import utcnow
from dagster_agent_de.errors import AgentDEError, SpecError

CONTEXT_FILE = "agent_de_context.yml"


class ContextRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    rule: str
    applies_to: list[str] = Field(default_factory=list)
    suppresses: list[str] | None = None
    source: str = "hand-written"
    decided_by: str | None = None
    at: datetime | None = None


class ContextRules(BaseModel):
    rules: list[ContextRule] = Field(default_factory=list)
    path: Path | None = None
    digest: str | None = None
    error: str | None = None  # the file is malformed: rules are the last good ones


class ContextConflictError(AgentDEError):
    """The context file changed since it was read: re-read and retry."""


_last_good: dict[str, ContextRules] = {}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parse_rules(text: str, path: Path | None = None) -> list[ContextRule]:
    """Parse the file's text; :class:`SpecError` names the line of the problem."""
    where = str(path or CONTEXT_FILE)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise SpecError(f"{where}:{line} is not valid YAML ({getattr(e, 'problem', e)})") from e
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        raise SpecError(f"{where}: expected a mapping with a `rules:` list")
    rules = []
    lines = text.splitlines()
    for i, item in enumerate(data.get("rules") or []):
        try:
            rules.append(ContextRule.model_validate(item))
        except ValidationError as e:
            ident = item.get("id") if isinstance(item, dict) else None
            line = next((n + 1 for n, ln in enumerate(lines) if ident and f"id: {ident}" in ln), None)
            problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            raise SpecError(f"{where}:{f' line {line}' if line else ''} rule #{i + 1}: {problems}") from e
    ids = [r.id for r in rules]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise SpecError(f"{where}: duplicate rule ids {', '.join(dup)}")
    return rules


def load_rules(project_dir: Path) -> ContextRules:
    """Rules of the project; on a malformed file, the last good rules plus the error."""
    path = project_dir / CONTEXT_FILE
    if not path.exists():
        return ContextRules(path=path)
    text = path.read_text()
    try:
        loaded = ContextRules(rules=parse_rules(text, path), path=path, digest=_digest(text))
    except SpecError as e:
        prev = _last_good.get(str(path), ContextRules(path=path))
        return prev.model_copy(update={"error": str(e)})
    _last_good[str(path)] = loaded
    return loaded


def add_rule(project_dir: Path, rule: ContextRule, *, expected_digest: str | None = None) -> ContextRules:
    """Append ``rule`` atomically, under a lock. With ``expected_digest``, refuse if the file changed meanwhile."""
    import fcntl

    with open(project_dir / ".agent_de_context.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _add_rule_locked(project_dir, rule, expected_digest)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _add_rule_locked(project_dir: Path, rule: ContextRule, expected_digest: str | None) -> ContextRules:
    path = project_dir / CONTEXT_FILE
    text = path.read_text() if path.exists() else ""
    if expected_digest is not None and text and _digest(text) != expected_digest:
        raise ContextConflictError(f"{path} changed since it was read; re-read it and answer again")
    rules = parse_rules(text, path) if text else []
    if any(r.id == rule.id for r in rules):
        raise ContextConflictError(f"{path} already has a rule {rule.id}")
    entry = rule.model_dump(mode="json", exclude_none=True)
    body = text if text.strip() else "# Business context the agent uses; reviewed like code.\nrules:\n"
    if "rules:" not in body:
        body = body.rstrip("\n") + "\nrules:\n"
    if body.rstrip().endswith("rules: []"):
        body = body.rstrip()[: -len("[]")] + "\n"
    block = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True)
    body = body if body.endswith("\n") else body + "\n"
    body += "".join("  " + ln + "\n" for ln in block.splitlines())
    parse_rules(body, path)  # never write a file we could not read back
    tmp = path.with_suffix(f".yml.{os.getpid()}.tmp")
    tmp.write_text(body)
    # re-check right before the rename: a concurrent writer between read and now is a conflict
    now = path.read_text() if path.exists() else ""
    if now != text:
        tmp.unlink()
        raise ContextConflictError(f"{path} changed while writing; re-read it and answer again")
    tmp.replace(path)
    return load_rules(project_dir)


def new_rule_id(text: str) -> str:
    return "R-" + hashlib.sha1(f"{text}{utcnow().isoformat()}".encode()).hexdigest()[:8]
