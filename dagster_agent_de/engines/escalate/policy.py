"""The autonomy policy: which action classes run unattended, with a human present, or with sign-off.

Defaults are safe: detection and read-only queries are autonomous; writing proposals needs
nobody; applying a code fix needs a human present; changing data, PII handling and
anything finance-tagged need authority (finance: two distinct approvers).

A global pause (``agent-de pause``) stops autonomous work until ``agent-de resume``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dagster_agent_de.core.models import utcnow
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.errors import SpecError, StatementRefusedError

POLICY_FILE = "agent_de_policy.yml"
PAUSE_FLAG = "paused"


class ActionClass(str, Enum):
    DETECTION = "detection"
    READ_ONLY_QUERY = "read_only_query"
    WRITE_PROPOSAL = "write_proposal"
    APPLY_CODE_FIX = "apply_code_fix"
    CHANGE_DATA = "change_data"
    PII_HANDLING = "pii_handling"
    FINANCE = "finance"


class Autonomy(str, Enum):
    AUTONOMOUS = "autonomous"
    NEEDS_PRESENCE = "needs_presence"
    NEEDS_AUTHORITY = "needs_authority"


DEFAULTS: dict[ActionClass, Autonomy] = {
    ActionClass.DETECTION: Autonomy.AUTONOMOUS,
    ActionClass.READ_ONLY_QUERY: Autonomy.AUTONOMOUS,
    ActionClass.WRITE_PROPOSAL: Autonomy.AUTONOMOUS,
    ActionClass.APPLY_CODE_FIX: Autonomy.NEEDS_PRESENCE,
    ActionClass.CHANGE_DATA: Autonomy.NEEDS_AUTHORITY,
    ActionClass.PII_HANDLING: Autonomy.NEEDS_AUTHORITY,
    ActionClass.FINANCE: Autonomy.NEEDS_AUTHORITY,
}


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: dict[ActionClass, Autonomy] = Field(default_factory=lambda: dict(DEFAULTS))
    finance_approvers: int = Field(default=2, ge=1, description="Distinct approvers for finance-tagged changes (four eyes).")

    def level(self, action: ActionClass) -> Autonomy:
        return self.actions.get(action, DEFAULTS[action])

    def line(self, action: ActionClass) -> str:
        return f"{POLICY_FILE}: actions.{action.value} = {self.level(action).value}"


def load_policy(project_dir: Path) -> Policy:
    path = project_dir / POLICY_FILE
    if not path.exists():
        return Policy()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        merged = {**{k.value: v.value for k, v in DEFAULTS.items()}, **(data.get("actions") or {})}
        return Policy.model_validate({**data, "actions": merged})
    except (yaml.YAMLError, ValidationError) as e:
        raise SpecError(f"{path} is invalid: {e}") from e


class PolicyRefusedError(StatementRefusedError):
    """The autonomy policy does not allow this action now."""


def authorize(
    policy: Policy,
    action: ActionClass,
    *,
    human_present: bool = False,
    approvers: list[str] | None = None,
    finance: bool = False,
    audit=None,
    what: str = "",
) -> None:
    """Raise :class:`PolicyRefusedError` (and audit the refusal with the policy line) unless allowed."""
    levels = [(action, policy.level(action))]
    if finance:
        levels.append((ActionClass.FINANCE, policy.level(ActionClass.FINANCE)))
    distinct = sorted(set(approvers or []))
    for act, level in levels:
        reason = None
        if level == Autonomy.NEEDS_PRESENCE and not (human_present or distinct):
            reason = "needs a human present (launch it yourself, or answer its escalation)"
        elif level == Autonomy.NEEDS_AUTHORITY:
            needed = policy.finance_approvers if act == ActionClass.FINANCE else 1
            if len(distinct) < needed:
                reason = (f"needs sign-off by {needed} distinct approver(s), has {len(distinct)}"
                          + (f" ({', '.join(distinct)})" if distinct else ""))
        if reason:
            message = f"refused by the autonomy policy: {what or act.value} {reason} [{policy.line(act)}]"
            if audit is not None:
                audit.record(kind="action", statement=what or act.value, rationale=f"policy check for {act.value}",
                             outcome="refused", error=message)
            raise PolicyRefusedError(message)
    if audit is not None:
        audit.record(kind="action", statement=what or action.value, rationale=f"policy check for {action.value}",
                     outcome="ok")


def is_paused(state: StateStore) -> bool:
    return state.get_flag(PAUSE_FLAG) is not None


def set_paused(state: StateStore, paused: bool, who: str = "cli") -> None:
    """Pause (or resume) autonomous work for every process sharing the state store."""
    state.set_flag(PAUSE_FLAG, f"paused by {who} at {utcnow().isoformat(timespec='seconds')}" if paused else None)
