"""Investigation speed without an LLM: each demo incident from failed check to recorded finding, and the
SQL analysis of one failing asset in a synthetic 2,000-model project (upstream only, never the whole project).

    python benchmarks/investigate.py [--scale 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def incidents(scale: int) -> None:
    from dagster import DagsterInstance, build_sensor_context

    from dagster_agent_de.config import resolve_settings
    from dagster_agent_de.dagster.definitions import build_definitions
    from dagster_agent_de.demo.incidents import INCIDENTS, inject, revert
    from dagster_agent_de.demo.runner import run_demo
    from dagster_agent_de.project import DbtProjectInfo

    with tempfile.TemporaryDirectory() as d:
        os.environ["DAGSTER_HOME"] = str(Path(d) / "home")
        Path(d, "home").mkdir()
        t0 = time.perf_counter()
        result = run_demo(resolve_settings(Path(d) / "state", None, "duckdb"), scale=scale)
        settings = result.settings
        print(f"demo built at scale {scale:,} orders in {time.perf_counter() - t0:.0f}s")
        defs = build_definitions(settings)
        sensor = defs.resolve_sensor_def("failed_check_sensor")
        res = {"agent_warehouse": defs.resources["agent_warehouse"]}
        info = DbtProjectInfo.from_settings(settings)
        with DagsterInstance.get() as instance:
            with build_sensor_context(instance=instance, repository_def=defs.get_repository_def(), resources=res) as ctx:
                cursor = sensor(ctx).cursor
            for name, incident in INCIDENTS.items():
                inject(incident, settings.project_dir, settings.duckdb_path)
                try:
                    if incident.expected_pattern == "schema_drift":
                        defs.resolve_job_def("schema_drift_check").execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
                    else:
                        info.run_dbt(["build", "-q"], env=settings.dbt_env(), check=False)
                        job = "dbt_build" if incident.expected_pattern == "duplicate_key" else "reconcile"
                        sel = None
                        if job == "dbt_build":
                            from dagster import AssetKey

                            sel = [AssetKey([incident.expected_model])]
                        defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False,
                                                                      run_config=QUIET, asset_selection=sel)
                    with build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def(),
                                              resources=res) as ctx:
                        result = sensor(ctx)
                    cursor = result.cursor
                    for req in result.run_requests or []:
                        start = time.perf_counter()
                        run = defs.resolve_job_def("investigate").execute_in_process(
                            instance=instance, run_config={**req.run_config, **QUIET}, tags=req.tags)
                        elapsed = time.perf_counter() - start
                        top = run.output_for_node("investigate_failure")["findings"][0]
                        ok = "ok" if (top["pattern"], top["model"]) == (incident.expected_pattern, incident.expected_model) else "MISS"
                        print(f"  {name:26} {req.tags['agent_de/check']:55} {elapsed:5.2f}s  -> {top['pattern']} in "
                              f"{top['model']} ({top['confidence']:.0%}) [{ok}] (goal < 10 s)")
                finally:
                    revert(incident, settings.project_dir, settings.duckdb_path)
                    info.run_dbt(["run", "-q"], env=settings.dbt_env(), check=False)
                    if incident.expected_pattern == "schema_drift":
                        defs.resolve_job_def("schema_drift_check").execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)


def synthetic(models: int) -> None:
    from synthetic import make_project

    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.engines.investigate import Failure, investigate
    from dagster_agent_de.manifest import Manifest

    with tempfile.TemporaryDirectory() as d:
        project = make_project(Path(d), models)
        manifest = Manifest.load(project / "target" / "manifest.json", project)
        target = f"m{models - 1}"
        start = time.perf_counter()
        upstream = manifest.upstream(manifest.find(target).unique_id)
        wh_path = Path(d) / "empty.duckdb"
        import duckdb

        duckdb.connect(str(wh_path)).close()
        with DuckDBWarehouse(wh_path, AuditLog(None)) as wh:
            report = investigate(Failure(asset=target, check="synthetic"), manifest, wh)
        elapsed = time.perf_counter() - start
        print(f"synthetic {models:,}-model manifest: investigated {target} over {len(upstream) + 1} upstream nodes "
              f"(of {len(manifest.nodes):,}) in {elapsed:.2f}s; {report.notes[-2] if len(report.notes) > 1 else ''}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=100_000)
    ap.add_argument("--models", type=int, default=2000)
    args = ap.parse_args()
    incidents(args.scale)
    synthetic(args.models)


if __name__ == "__main__":
    main()
