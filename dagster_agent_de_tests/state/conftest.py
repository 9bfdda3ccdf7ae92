"""The state store's backends for the contract and concurrency tests: SQLite and a real PostgreSQL.

PostgreSQL is one throwaway server per session (the deployment tests' helper, on its own free
port and temp dir); each test gets its own schema in it, as a fresh SQLite file is per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dagster_agent_de.adapters.state import SqlStateStore


@dataclass(frozen=True)
class Backend:
    """How to open (again, from any process) one test's state store."""

    url: str
    schema: str = "agent_de"

    def open(self) -> SqlStateStore:
        return SqlStateStore(self.url, schema=self.schema)

    @property
    def name(self) -> str:
        return self.url.split(":", 1)[0]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    from dagster_agent_de_tests.deployment.postgres import Postgres

    try:
        pg = Postgres()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    pg.start()
    try:
        yield f"postgresql://postgres@127.0.0.1:{pg.port}/dagster"
    finally:
        pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend(f"sqlite:///{tmp_path / 'state.db'}")
    url = request.getfixturevalue("postgres_url")
    return Backend(url, schema=f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(backend: Backend) -> Iterator[SqlStateStore]:
    s = backend.open()
    yield s
    s.close()
