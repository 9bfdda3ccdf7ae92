"""Where things live: the state directory, the dbt project, its profile target and connection.

Resolution order for each setting: explicit argument, environment variable, the dbt project's own
files, default.

- ``AGENT_DE_STATE_DIR``: state directory (default ``./.agent_de``). Holds the agent's state, the
  demo's DuckDB warehouse and the demo's Dagster home.
- ``AGENT_DE_PROJECT_DIR``: dbt project. Precedence: the explicit argument (``--project-dir``), this
  variable, then (for a caller that passes ``cwd``: the command line) the dbt project in the current
  directory, as dbt itself reads it, then the demo: its working copy ``<state dir>/dbt_project`` when
  ``agent-de demo`` created it, else the bundled ``dbt_project/``. The state directory does not depend on
  the project: a project found in the current directory gets ``./.agent_de`` there, as
  ``--project-dir .`` does.
- ``AGENT_DE_TARGET`` (or dbt's own ``DBT_TARGET``): the dbt target, any name the profile has (default:
  the profile's ``target:``). The warehouse type comes from that output's ``type``.
- ``AGENT_DE_DUCKDB_PATH``: an explicit override of the DuckDB file the profile names (the override is
  said in the run log; without it the profile's ``path`` is used, as dbt uses it).
- ``AGENT_DE_MODE``: ``standalone`` (the location owns the dbt assets: the default for the bundled
  demo) or ``sidecar`` (attach to the dbt assets of another location: the default for any other project).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from dagster_agent_de.bundled import bundled_project_dir
from dagster_agent_de.errors import ConfigError
from dagster_agent_de.profile import ProfileTarget, find_profiles_dir, load_profile_target, load_project_yaml

BUNDLED_PROJECT_DIR = bundled_project_dir()  # the checkout's dbt_project/, or the installed package's copy
DEFAULT_STATE_DIR = ".agent_de"
DEMO_PROFILE = "agent_de_demo"
Mode = Literal["standalone", "sidecar", "library"]
MODES: tuple[Mode, ...] = ("standalone", "sidecar", "library")


@dataclass(frozen=True)
class Settings:
    """Resolved locations. Build with :func:`resolve_settings`.

    ``target`` is the target asked for explicitly (``None``: the profile's default); the profile and
    its connection are read lazily, once, from the project's ``profiles.yml``.
    """

    state_dir: Path
    project_dir: Path
    target: str | None = None
    duckdb_override: Path | None = None

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.state_dir / "dagster_home")

    @property
    def proposals_dir(self) -> Path:
        """Where onboarding proposals are written (a directory per source table)."""
        return self.state_dir / "proposals"

    @property
    def entity_maps_dir(self) -> Path:
        """Where entity resolution writes its entity maps and review lists."""
        return self.proposals_dir / "entities"

    @property
    def demo_project_dir(self) -> Path:
        return self.state_dir / "dbt_project"

    @cached_property
    def profiles_dir(self) -> Path:
        return find_profiles_dir(self.project_dir)

    @cached_property
    def profile_target(self) -> ProfileTarget:
        """The output of the project's profile that dbt uses (rendered, with ``env_var``)."""
        return load_profile_target(self.project_dir, self.profiles_dir, self.target)

    @property
    def resolved_target(self) -> str:
        return self.profile_target.target

    @property
    def warehouse_type(self) -> str:
        """``duckdb``, ``snowflake`` or ``postgres``: the output's ``type``, never the target's name."""
        return self.profile_target.type

    @cached_property
    def is_demo(self) -> bool:
        """The bundled demo project (or a working copy of it): the only project the agent owns."""
        try:
            return load_project_yaml(self.project_dir).get("profile") == DEMO_PROFILE
        except ConfigError:
            return False

    @property
    def duckdb_path(self) -> Path:
        """The DuckDB file: an explicit override, else the profile's ``path`` (relative to the project,
        where dbt runs), else ``<state dir>/warehouse.duckdb`` for a project with no DuckDB target."""
        return self._duckdb_file()[0]

    @property
    def duckdb_missing_fix(self) -> str:
        """What makes :attr:`duckdb_path` exist, naming where the path came from (said when it does not)."""
        return self._duckdb_file()[1]

    def _duckdb_file(self) -> tuple[Path, str]:
        """The DuckDB file and, for when it does not exist, where its path came from and what to do."""
        if self.duckdb_override is not None:
            return self.duckdb_override, "it is the duckdb_path the agent is configured with; point that at the file dbt builds"
        env = os.environ.get("AGENT_DE_DUCKDB_PATH")
        if env:
            return Path(env).expanduser().resolve(), (
                "AGENT_DE_DUCKDB_PATH names it; point it at the file dbt builds, or unset it to read the path "
                "your profile names")
        if self.is_demo:  # the agent owns the demo: its warehouse lives in the state dir
            return self.state_dir / "warehouse.duckdb", (
                "run `agent-de demo` first (it builds the demo's warehouse in the state dir), or set --state-dir / "
                "AGENT_DE_STATE_DIR to the state dir it used")
        no_target = "set AGENT_DE_DUCKDB_PATH to the file dbt builds"
        try:
            target = self.profile_target
        except ConfigError:
            return self.state_dir / "warehouse.duckdb", no_target
        if target.type != "duckdb":
            return self.state_dir / "warehouse.duckdb", no_target
        raw = str(target.output.get("path") or "")
        if not raw or raw == ":memory:" or raw.startswith("md:"):
            raise ConfigError(
                f"{target.describe()} has path {raw or '(none)'!r}: the agent reads the DuckDB file dbt builds, "
                "so the output needs a file path (or set AGENT_DE_DUCKDB_PATH)"
            )
        path = Path(raw).expanduser()
        fix = (f"{target.describe()} points at it (path {raw!r}); run `dbt build --target {target.target}` in "
               f"{self.project_dir} to build it, or choose the target whose file exists (--target, AGENT_DE_TARGET)")
        return (path if path.is_absolute() else (self.project_dir / path).resolve()), fix

    def overrides(self) -> list[str]:
        """Environment settings that win over the dbt profile, said where they take effect."""
        out = []
        if self.duckdb_override is None and os.environ.get("AGENT_DE_DUCKDB_PATH"):
            out.append(f"AGENT_DE_DUCKDB_PATH={os.environ['AGENT_DE_DUCKDB_PATH']} overrides the profile's DuckDB path")
        return out

    def dbt_env(self) -> dict[str, str]:
        """Extra environment for dbt subprocesses. None for a team's project (dbt reads their profile as
        it is); the demo's profile reads ``AGENT_DE_DEMO_DUCKDB_PATH``, a variable no other profile reads,
        so exporting it can never redirect another project's connection."""
        return {"AGENT_DE_DEMO_DUCKDB_PATH": str(self.duckdb_path)} if self.is_demo else {}

    def export_env(self) -> None:
        """Make dbt subprocesses started by dagster-dbt (which pass ``os.environ``) see :meth:`dbt_env`."""
        os.environ.update(self.dbt_env())

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
    duckdb_path: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> Settings:
    """Resolve settings from arguments, environment variables and defaults.

    ``cwd``: the directory the command runs in; a dbt project there (other than the bundled demo) is
    the project when neither ``project_dir`` nor ``AGENT_DE_PROJECT_DIR`` names one. Callers that are
    about the demo (``agent-de demo``) and code locations (configured by environment) leave it out.
    """
    state = Path(state_dir or os.environ.get("AGENT_DE_STATE_DIR") or DEFAULT_STATE_DIR).resolve()
    here = cwd_project(cwd)
    if project_dir or os.environ.get("AGENT_DE_PROJECT_DIR"):
        project = Path(project_dir or os.environ["AGENT_DE_PROJECT_DIR"]).resolve()
    elif here is not None:
        project = here
    elif (state / "dbt_project" / "dbt_project.yml").exists():
        project = state / "dbt_project"
    else:
        project = BUNDLED_PROJECT_DIR
    tgt = target or os.environ.get("AGENT_DE_TARGET") or None
    settings = Settings(state_dir=state, project_dir=project, target=tgt,
                        duckdb_override=Path(duckdb_path).resolve() if duckdb_path else None)
    if tgt and (project / "dbt_project.yml").exists():
        _ = settings.profile_target  # a target asked for by name must exist: fail now, naming the ones that do
    return settings


def cwd_project(cwd: str | os.PathLike[str] | None) -> Path | None:
    """``cwd`` when it holds a dbt project that is not the bundled demo (whose working copy the demo
    rules pick), else None."""
    if cwd is None:
        return None
    here = Path(cwd).resolve()
    if not (here / "dbt_project.yml").exists() or here == BUNDLED_PROJECT_DIR.resolve():
        return None
    return here


def demo_working_copy(settings: Settings) -> Settings:
    """The bundled demo copied once to ``<state dir>/dbt_project`` (kept if it exists), so dbt's
    artifacts and the demo's incidents never touch the repository or the installed package."""
    import shutil

    dest = settings.demo_project_dir
    if not (dest / "dbt_project.yml").exists():
        settings.ensure_state_dir()
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        shutil.copytree(BUNDLED_PROJECT_DIR, tmp, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
        try:
            tmp.rename(dest)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
    return Settings(settings.state_dir, dest, settings.target, settings.duckdb_override)


@dataclass(frozen=True)
class Cadence:
    """When the agent's schedules and sensors run: environment variables, read once (``Cadence.from_env``).

    >>> c = Cadence.from_env({"AGENT_DE_SCHEMA_POLL": "off", "AGENT_DE_FAILED_CHECK_SECONDS": "10"})
    >>> c.schema_poll, c.failed_check_seconds, c.reconcile_cron
    (False, 10, '0 6 * * *')
    >>> Cadence.from_env({"AGENT_DE_RETRY_BACKOFF_SECONDS": "2"}).retry_backoff_seconds
    2.0
    """

    reconcile_cron: str = "0 6 * * *"
    pii_cron: str = "30 6 * * *"
    metrics_cron: str = "0 7 * * 1"
    digest_cron: str = "0 8 * * *"
    schema_poll: bool = True
    schema_poll_seconds: int = 60
    failed_check_seconds: int = 30
    after_run_seconds: int = 30
    investigate_lookback_hours: float = 24.0  # the failed-check sensor's first tick: failures this recent
    retry_backoff_seconds: float = 60.0  # first wait before retrying a failed investigation (doubles)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Cadence:
        env = os.environ if env is None else env

        def seconds(name: str, default: int) -> int:
            raw = env.get(name)
            if raw is None or not raw.strip():
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number of seconds; set it to e.g. {default}") from None
            if value <= 0:
                raise ConfigError(f"{name}={raw!r} must be a positive number of seconds")
            return value

        def at_least_zero(name: str, default: float, unit: str) -> float:
            raw = env.get(name)
            if raw is None or not raw.strip():
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number of {unit}; set it to e.g. {default:g}") from None
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name}={raw!r} must be a number of {unit}, 0 or more; set it to e.g. {default:g}")
            return value

        d = cls()
        return cls(
            reconcile_cron=env.get("AGENT_DE_RECONCILE_CRON") or d.reconcile_cron,
            pii_cron=env.get("AGENT_DE_PII_CRON") or d.pii_cron,
            metrics_cron=env.get("AGENT_DE_METRICS_CRON") or d.metrics_cron,
            digest_cron=env.get("AGENT_DE_DIGEST_CRON") or d.digest_cron,
            schema_poll=env.get("AGENT_DE_SCHEMA_POLL", "on").strip().lower() not in ("off", "0", "false"),
            schema_poll_seconds=seconds("AGENT_DE_SCHEMA_POLL_SECONDS", d.schema_poll_seconds),
            failed_check_seconds=seconds("AGENT_DE_FAILED_CHECK_SECONDS", d.failed_check_seconds),
            after_run_seconds=seconds("AGENT_DE_AFTER_RUN_SECONDS", d.after_run_seconds),
            investigate_lookback_hours=at_least_zero(
                "AGENT_DE_INVESTIGATE_LOOKBACK_HOURS", d.investigate_lookback_hours, "hours"),
            retry_backoff_seconds=at_least_zero("AGENT_DE_RETRY_BACKOFF_SECONDS", d.retry_backoff_seconds, "seconds"),
        )


def resolve_mode(settings: Settings, mode: str | None = None) -> Mode:
    """``mode``, else ``AGENT_DE_MODE``, else standalone for the bundled demo and sidecar otherwise.

    A location cannot see the other locations while it loads, so it cannot detect a team's own
    ``@dbt_assets``: owning the dbt assets is opt-in for any project but the demo.
    """
    chosen = mode or os.environ.get("AGENT_DE_MODE") or ("standalone" if settings.is_demo else "sidecar")
    if chosen not in MODES:
        raise ConfigError(f"AGENT_DE_MODE={chosen!r}; use one of {', '.join(MODES)}")
    return next(m for m in MODES if m == chosen)
