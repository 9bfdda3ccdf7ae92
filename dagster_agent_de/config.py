"""Where things live: the state directory, the dbt project and the target.

Resolution order for each setting: explicit argument, environment variable, default.

- ``AGENT_DE_STATE_DIR``: state directory (default ``./.agent_de``). Holds the DuckDB
  warehouse, the audit log, drift snapshots, findings and the demo's Dagster home.
- ``AGENT_DE_PROJECT_DIR``: dbt project (default: the demo's working copy
  ``<state dir>/dbt_project`` when ``agent-de demo`` created it, else the bundled
  ``dbt_project/``).
- ``AGENT_DE_TARGET``: dbt target (default ``duckdb``).
- ``AGENT_DE_DUCKDB_PATH``: the DuckDB file (default ``<state dir>/warehouse.duckdb``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dagster_agent_de.bundled import bundled_project_dir
from dagster_agent_de.errors import ConfigError

BUNDLED_PROJECT_DIR = bundled_project_dir()  # the checkout's dbt_project/, or the installed package's copy
DEFAULT_STATE_DIR = ".agent_de"
SUPPORTED_TARGETS = ("duckdb", "snowflake")


@dataclass(frozen=True)
class Settings:
    """Resolved locations. Build with :func:`resolve_settings`."""

    state_dir: Path
    project_dir: Path
    target: str
    duckdb_path: Path

    @property
    def audit_path(self) -> Path:
        return self.state_dir / "audit" / "audit.jsonl"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.state_dir / "dagster_home")

    @property
    def demo_project_dir(self) -> Path:
        return self.state_dir / "dbt_project"

    def dbt_env(self) -> dict[str, str]:
        """Environment variables the bundled profiles.yml reads."""
        return {
            "AGENT_DE_DUCKDB_PATH": str(self.duckdb_path),
            "AGENT_DE_TARGET": self.target,
            "AGENT_DE_STATE_DIR": str(self.state_dir),
        }

    def export_env(self) -> None:
        """Make dbt subprocesses (dagster-dbt passes ``os.environ``) see these settings."""
        for key, value in self.dbt_env().items():
            os.environ[key] = value

    def ensure_state_dir(self) -> Path:
        """Create the state directory, or raise naming the path when it is not writable."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            probe = self.state_dir / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise ConfigError(
                f"state directory {self.state_dir} is not writable ({e.strerror}); "
                "set AGENT_DE_STATE_DIR or --state-dir to a writable directory"
            ) from e
        return self.state_dir


def resolve_settings(
    state_dir: str | os.PathLike[str] | None = None,
    project_dir: str | os.PathLike[str] | None = None,
    target: str | None = None,
) -> Settings:
    """Resolve settings from arguments, environment variables and defaults."""
    state = Path(state_dir or os.environ.get("AGENT_DE_STATE_DIR") or DEFAULT_STATE_DIR).resolve()
    if project_dir or os.environ.get("AGENT_DE_PROJECT_DIR"):
        project = Path(project_dir or os.environ["AGENT_DE_PROJECT_DIR"]).resolve()
    elif (state / "dbt_project" / "dbt_project.yml").exists():
        project = state / "dbt_project"
    else:
        project = BUNDLED_PROJECT_DIR
    tgt = target or os.environ.get("AGENT_DE_TARGET") or "duckdb"
    if tgt not in SUPPORTED_TARGETS:
        raise ConfigError(
            f"unknown target {tgt!r}; use one of {', '.join(SUPPORTED_TARGETS)} "
            "(--target or AGENT_DE_TARGET)"
        )
    # An explicit state dir wins over an inherited AGENT_DE_DUCKDB_PATH (which we export for dbt).
    env_duckdb = None if state_dir else os.environ.get("AGENT_DE_DUCKDB_PATH")
    duckdb_path = Path(env_duckdb).resolve() if env_duckdb else state / "warehouse.duckdb"
    return Settings(state_dir=state, project_dir=project, target=tgt, duckdb_path=duckdb_path)
