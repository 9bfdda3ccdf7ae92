"""Session fixtures: one real dbt build of the demo, in its own temp state dir.

Scenarios change SQL or data in place in the session's working copy and rebuild only
what they touch; tests that do must restore what they changed (see ``DemoEnv.patched``).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.state import SqlStateStore
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.config import BUNDLED_PROJECT_DIR, Settings, resolve_settings

DEMO_SCALE = 2_000
_ENV_KEYS = ("AGENT_DE_STATE_URL", "AGENT_DE_STATE_DIR", "AGENT_DE_PROJECT_DIR", "AGENT_DE_TARGET", "AGENT_DE_DUCKDB_PATH", "DAGSTER_HOME")


@pytest.fixture(autouse=True, scope="session")
def _no_network_llm() -> Iterator[None]:
    """No test reaches Anthropic: the key is removed and the endpoint points at a closed local port,
    so only injected transports and local replay servers answer."""
    saved = {k: os.environ.pop(k, None) for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "AGENT_DE_LLM")}
    os.environ["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"
    yield
    os.environ.pop("ANTHROPIC_BASE_URL", None)
    for k, v in saved.items():
        if v is not None:
            os.environ[k] = v


@contextmanager
def patched_file(path: Path, old: str, new: str) -> Iterator[Path]:
    """Replace ``old`` by ``new`` in ``path`` for the duration of the block (the scenario's edit)."""
    original = path.read_text()
    assert old in original, f"{old!r} not in {path}"
    path.write_text(original.replace(old, new))
    try:
        yield path
    finally:
        path.write_text(original)


@dataclass
class DemoEnv:
    settings: Settings
    dagster_home: Path
    run_id: str

    @property
    def project_dir(self) -> Path:
        return self.settings.project_dir

    def warehouse(self, audit: AuditLog | None = None) -> DuckDBWarehouse:
        return DuckDBWarehouse(self.settings.duckdb_path, audit or AuditLog(None))

    def write(self, sql: str) -> None:
        """Change source data in place (as the source system would)."""
        from dagster_agent_de.demo.data import execute_sql

        execute_sql(self.settings.duckdb_path, sql)

    def dbt(self, *args: str) -> None:
        from dagster_agent_de.project import DbtProjectInfo

        DbtProjectInfo.from_settings(self.settings).run_dbt(list(args), env=self.settings.dbt_env())

    @contextmanager
    def incident(self, name: str, rebuild: str, restore: tuple[str, ...] = ()) -> Iterator[object]:
        """Inject a seed incident; afterwards put back the files it (or a fix) touched, undo its data
        change and rebuild ``rebuild`` (a dbt selector), so the next test starts from the clean demo."""
        from dagster_agent_de.demo.incidents import get_incident, inject, revert

        incident = get_incident(name)
        inject(incident, self.project_dir, self.settings.duckdb_path)
        try:
            yield incident
        finally:
            for rel in restore:
                (self.project_dir / rel).write_text((BUNDLED_PROJECT_DIR / rel).read_text())
            revert(incident, self.project_dir, self.settings.duckdb_path)
            self.dbt("run", "-s", rebuild, "-q")

    def patched(self, relpath: str, old: str, new: str):
        """Replace ``old`` by ``new`` in a project file; restored (and rebuilt by the caller) after."""
        return patched_file(self.project_dir / relpath, old, new)


@pytest.fixture(scope="session")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoEnv]:
    """The demo built once through Dagster into a real temporary instance."""
    from dagster_agent_de.demo.runner import run_demo

    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    state = tmp_path_factory.mktemp("agent_de_state")
    project = state / "project"
    shutil.copytree(BUNDLED_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    home = state / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    for k in ("AGENT_DE_DUCKDB_PATH", "AGENT_DE_TARGET", "AGENT_DE_STATE_URL"):
        os.environ.pop(k, None)
    settings = resolve_settings(state, project, "duckdb")
    result = run_demo(settings, scale=DEMO_SCALE)
    assert result.success, result.lines()
    try:
        yield DemoEnv(settings=result.settings, dagster_home=home, run_id=result.run_id)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def state_store(tmp_path: Path) -> Iterator[SqlStateStore]:
    """A real SQLite state store in the test's temp dir."""
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.close()


@pytest.fixture
def duck_audit(state_store: SqlStateStore) -> AuditLog:
    return AuditLog(state_store, actor="test", run_id="run-1")


TEAM_PROJECT = Path(__file__).parent / "fixtures" / "team_project"


@dataclass
class TeamEnv:
    """A team's own dbt project and code location (keys prefixed ``analytics``, a ``dev`` target, the
    DuckDB file named only in its profile), built once: the agent attaches to it."""

    project_dir: Path
    state_dir: Path

    @property
    def warehouse_path(self) -> Path:
        return self.project_dir / "warehouse" / "acme_dev.duckdb"

    def location(self):
        """The team's ``team_location`` module, loaded from the working copy."""
        import importlib.util

        os.environ["ACME_PROJECT_DIR"] = str(self.project_dir)
        spec = importlib.util.spec_from_file_location("team_location", self.project_dir / "team_location.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["team_location"] = module
        spec.loader.exec_module(module)
        return module

    def patched(self, relpath: str, old: str, new: str):
        """Replace ``old`` by ``new`` in a project file; restored after."""
        return patched_file(self.project_dir / relpath, old, new)


@pytest.fixture(scope="session")
def team_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamEnv]:
    import subprocess

    from dagster_agent_de.project import dbt_executable

    root = tmp_path_factory.mktemp("team")
    project = root / "acme"
    shutil.copytree(TEAM_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "warehouse", "__pycache__"))
    sys.path.insert(0, str(project))
    from seed_data import load_raw  # the team's loader, from the working copy

    load_raw(project / "warehouse" / "acme_dev.duckdb")
    for k in ("AGENT_DE_DUCKDB_PATH", "AGENT_DE_TARGET", "DBT_TARGET", "DBT_PROFILES_DIR"):
        os.environ.pop(k, None)
    proc = subprocess.run([dbt_executable(), "parse", "--quiet", "--project-dir", str(project),
                           "--profiles-dir", str(project)], cwd=project, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield TeamEnv(project_dir=project, state_dir=root / "agent_state")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """A real PostgreSQL server for the session (binaries from the postgresql package), on a free port."""
    from dagster_agent_de_tests.warehouses import PgServer

    server = PgServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """The engine suite's parameter: each test runs on DuckDB and on PostgreSQL (see ``warehouses.py``)."""
    from dagster_agent_de_tests.warehouses import duckdb_engine, postgres_engine

    eng = duckdb_engine(tmp_path) if request.param == "duckdb" else postgres_engine(request.getfixturevalue("pg_server"))
    try:
        yield eng
    finally:
        eng.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `dagster dev` tests run one after another on one pytest-xdist worker (``--dist loadgroup``):
    they mostly wait on a daemon's ticks, while the other worker runs the rest of the suite."""
    for item in items:
        if item.get_closest_marker("deployment") is not None:
            item.add_marker(pytest.mark.xdist_group("deployment"))
