"""Where a proposal goes: a proposal directory (always allowed), or into the dbt project
(``apply_code_fix``: a human present, per the autonomy policy). Existing files are never overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.engines.escalate.policy import ActionClass, authorize, load_policy
from dagster_agent_de.engines.onboard.generate import OnboardingProposal
from dagster_agent_de.errors import ConfigError


def project_wants_arguments_property(project_dir: Path) -> bool:
    """Should generic test arguments go under ``arguments:``? The project's
    ``flags.require_generic_test_arguments_property`` if set, else the installed dbt's default
    (on from dbt 1.11; absent before 1.10)."""
    try:
        data = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        data = {}
    flags = data.get("flags") or {}
    if "require_generic_test_arguments_property" in flags:
        return bool(flags["require_generic_test_arguments_property"])
    try:
        from dbt.contracts.project import ProjectFlags
    except ImportError:
        return False
    return bool(getattr(ProjectFlags(), "require_generic_test_arguments_property", False))


def _markdown(p: OnboardingProposal) -> str:
    lines = [f"# Onboarding {p.relation} -> {p.model_name}", "", "## Done (from the data)", ""]
    lines += [f"- {d}" for d in p.done]
    if p.todo:
        lines += ["", "## Left for you", ""] + [f"- {t}" for t in p.todo]
    lines += ["", "## Decisions that need a human", ""]
    for d in p.decisions:
        lines.append(f"- **{d.kind.value}**: {d.decision}")
        for i, o in enumerate(d.options):
            rec = " (recommended)" if d.recommendation == i else ""
            lines.append(f"  {i + 1}. {o.label}{rec}" + (f" — {o.evidence}" if o.evidence else ""))
        lines.append(f"  Until answered: {d.continues}")
    if not p.decisions:
        lines.append("- none")
    lines += ["", "## Files", ""] + [f"- `{f}`" for f in p.files]
    return "\n".join(lines) + "\n"


def write_proposal(p: OnboardingProposal, root: Path) -> Path:
    """Write the files under ``root/<source>__<table>/`` with ``ONBOARDING.md`` and ``proposal.json``."""
    out = root / f"{p.source_name}__{p.table}"
    for rel, content in p.files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (out / "ONBOARDING.md").write_text(_markdown(p))
    (out / "proposal.json").write_text(json.dumps(p.model_dump(mode="json"), indent=1))
    return out


def apply_proposal(p: OnboardingProposal, project_dir: Path, audit: AuditLog, *, human_present: bool) -> list[Path]:
    """Write the files into the dbt project. Refused by the policy without a human present;
    refuses to overwrite a file that exists (naming it)."""
    authorize(load_policy(project_dir), ActionClass.APPLY_CODE_FIX, human_present=human_present, audit=audit,
              what=f"add {len(p.files)} file(s) onboarding {p.relation} to {project_dir}")
    targets = [project_dir / rel for rel in p.files]
    clash = [str(t) for t in targets if t.exists()]
    if clash:
        raise ConfigError(f"onboarding {p.relation} would overwrite {', '.join(clash)}; move them or pick another --source name")
    for t, content in zip(targets, p.files.values(), strict=True):
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_text(content)
        audit.record(kind="action", statement=f"write {t}", rationale=f"onboard {p.relation}", outcome="ok")
    return targets
