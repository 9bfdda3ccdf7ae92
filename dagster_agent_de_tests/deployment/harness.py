"""Run a real `dagster dev` (webserver + daemon) on loopback and talk to it through GraphQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from dagster_agent_de.config import BUNDLED_PROJECT_DIR

REPO_ROOT = BUNDLED_PROJECT_DIR.parent
LOCATION = "agent_de"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterDev:
    """``dagster dev -w workspace.yaml`` in its own process group, always stopped by :meth:`stop`."""

    def __init__(self, root: Path, dagster_yaml: str = "", extra_env: dict[str, str] | None = None,
                 scale: int = 1000) -> None:
        self.root = root
        self.home = root / "dagster_home"
        self.state = root / "state"
        self.project = self.state / "dbt_project"  # the demo's working copy: its profile finds ../warehouse.duckdb
        self.port = free_port()
        self.log = root / "dagster_dev.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + dagster_yaml)
        shutil.copytree(BUNDLED_PROJECT_DIR, self.project, ignore=shutil.ignore_patterns("target", "logs"))
        from dagster_agent_de.demo.data import generate_demo_data

        generate_demo_data(self.state / "warehouse.duckdb", scale=scale)
        self.env = {
            **os.environ, "DAGSTER_HOME": str(self.home), "AGENT_DE_STATE_DIR": str(self.state),
            "AGENT_DE_PROJECT_DIR": str(self.project), "AGENT_DE_FAILED_CHECK_SECONDS": "5",
            "AGENT_DE_SCHEMA_POLL": "off",  # DuckDB: the poll must not hold the file while dbt writes it
            "DAGSTER_DISABLE_TELEMETRY": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **(extra_env or {}),
        }
        self.env.pop("AGENT_DE_DUCKDB_PATH", None)
        self.workspace = REPO_ROOT / "workspace.yaml"
        self.locations: tuple[str, ...] = (LOCATION,)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 240) -> None:
        dagster = str(Path(sys.executable).parent / "dagster")
        self.proc = subprocess.Popen(
            [dagster, "dev", "-w", str(self.workspace), "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=REPO_ROOT, env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited early:\n{self.tail()}")
            try:
                data = self.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                                    "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
                entries = data["workspaceOrError"]["locationEntries"]
                loaded = [e for e in entries if e["name"] in self.locations and e["loadStatus"] == "LOADED"]
                for entry in loaded:
                    err = entry["locationOrLoadError"]
                    if err["__typename"] == "PythonError":
                        raise RuntimeError(f"code location {entry['name']} failed to load: {err['message']}")
                if len(loaded) == len(self.locations):
                    return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"dagster dev did not load the location in {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def run_job_offline(self, job: str) -> None:
        """Run a job against the same instance while `dagster dev` is stopped (as a scheduler elsewhere would)."""
        code = ("from dagster import DagsterInstance\n"
                "from dagster_agent_de.dagster.definitions import defs\n"
                "with DagsterInstance.get() as i:\n"
                f"    defs.resolve_job_def({job!r}).execute_in_process(instance=i, raise_on_error=False)\n")
        subprocess.run([sys.executable, "-c", code], env=self.env, cwd=REPO_ROOT, check=True, capture_output=True)

    def reload_location(self) -> str:
        data = self.graphql(
            """mutation($l: String!) { reloadRepositoryLocation(repositoryLocationName: $l) { __typename } }""",
            {"l": LOCATION})
        return data["reloadRepositoryLocation"]["__typename"]

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            out = json.loads(resp.read())
        if out.get("errors"):
            raise RuntimeError(f"GraphQL errors: {out['errors']}")
        return out["data"]

    def launch(self, job: str, run_config: dict | None = None, tags: dict[str, str] | None = None,
               location: str = LOCATION) -> str:
        data = self.graphql(
            """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
                 __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
                 ... on RunConfigValidationInvalid { errors { message } } } }""",
            {"p": {"selector": {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": job},
                   "runConfigData": run_config or {},
                   "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}}},
        )["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launching {job} failed: {data}")
        return data["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        return self.graphql('query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }', {"id": run_id})[
            "runOrError"]["status"]

    def wait_run(self, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.run_status(run_id)
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(2)
        raise TimeoutError(f"run {run_id} did not finish in {timeout}s:\n{self.tail()}")

    def run_outcome(self, run_id: str) -> tuple[list[str], str]:
        """What a finished run materialized (asset keys) and its failure messages, to say why when it did not."""
        run = self.graphql(
            """query($id: ID!) { runOrError(runId: $id) { ... on Run { assetMaterializations { assetKey { path } }
                 eventConnection(limit: 500) { events { __typename ... on ErrorEvent { error { message } }
                   ... on MessageEvent { message } } } } } }""", {"id": run_id})["runOrError"]
        keys = ["/".join(m["assetKey"]["path"]) for m in run["assetMaterializations"]]
        errors = [(e.get("error") or {}).get("message") or e.get("message", "")
                  for e in run["eventConnection"]["events"] if e["__typename"] in ("RunFailureEvent", "EngineEvent", "ExecutionStepFailureEvent")
                  and (e.get("error") or "fail" in e.get("message", "").lower())]
        return keys, "\n".join(m for m in errors if m)[-2000:]

    def runs_tagged(self, key: str, value: str) -> list[dict[str, Any]]:
        data = self.graphql(
            """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results {
                 runId status jobName tags { key value } } } } }""",
            {"f": {"tags": [{"key": key, "value": value}]}},
        )
        return data["runsOrError"]["results"]

    def wait_for(self, what: str, fn, timeout: float = 300, every: float = 3):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = fn()
            if got:
                return got
            time.sleep(every)
        raise TimeoutError(f"waited {timeout}s for {what}:\n{self.tail()}")
