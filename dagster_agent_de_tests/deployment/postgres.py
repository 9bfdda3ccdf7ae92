"""A throwaway PostgreSQL server on loopback for the production-storage deployment test."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from dagster_agent_de_tests.deployment.harness import free_port


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Postgres:
    def __init__(self) -> None:
        import tempfile

        self.bindir = _bindir()
        if self.bindir is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb) not found: apt-get install postgresql")
        # directly under /tmp: the postgres user must be able to reach it (pytest's tmp dirs are 0700 root)
        self.root = Path(tempfile.mkdtemp(prefix="agent_de_pg_"))
        self.root.chmod(0o755)
        self.data = self.root / "pgdata"
        self.port = free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *cmd: str) -> None:
        full = ["runuser", "-u", "postgres", "--", *cmd] if self.as_root else list(cmd)
        proc = subprocess.run(full, capture_output=True, text=True, cwd=self.root)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")

    def start(self) -> None:
        self.data.mkdir()
        if self.as_root:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.data, "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w", "-o",
                  f"-p {self.port} -h 127.0.0.1 -k {self.root}", "start")
        self._run(str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
                  "create database dagster")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def dagster_yaml(self) -> str:
        # name the psycopg2 driver: SQLAlchemy 2.1 otherwise defaults to psycopg 3, which dagster-postgres does not use
        return f"storage:\n  postgres:\n    postgres_url: postgresql+psycopg2://postgres@127.0.0.1:{self.port}/dagster\n"


def started_postgres() -> Postgres:
    """A started server for a deployment test; skipped locally when the binaries are missing, an error in CI."""
    import pytest

    try:
        pg = Postgres()
    except FileNotFoundError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(e))
    pg.start()
    return pg
