"""The built wheel runs the demo and prepares its dbt project, and nothing writes into the installed package.

The wheel is installed with ``--target`` into a temporary directory first on ``PYTHONPATH`` (its
dependencies come from the test environment); everything runs from an empty working directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from dagster_agent_de.bundled import (
    bundled_project_dir,
    bundled_workspace_file,
    dbt_target_path,
    is_installed_copy,
)

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "workspace.yaml", "dagster_agent_de", "dbt_project")


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_wheel_runs_the_demo_and_never_writes_into_the_package(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
          str(src)], tmp_path, dict(os.environ))
    (wheel,) = (tmp_path / "dist").glob("dagster_agent_de-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = "dagster_agent_de/_bundled/"
    assert {bundled + "workspace.yaml", bundled + "dbt_project/dbt_project.yml", bundled + "dbt_project/profiles.yml",
            bundled + "dbt_project/models/marts/_marts.yml"} <= names
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "dagster_agent_de").rglob("*.py")}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    assert not [n for n in names if n.startswith(bundled + "dbt_project/") and n.split("/")[3] in ("target", "logs")]

    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], tmp_path,
         dict(os.environ))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AGENT_DE_", "DBT_")) and k not in ("DAGSTER_HOME", "ANTHROPIC_API_KEY", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    where = _run([sys.executable, "-c", "import dagster_agent_de.config as c; print(c.__file__); print(c.BUNDLED_PROJECT_DIR)"],
                 cwd, env).stdout.split()
    assert where == [str(site / "dagster_agent_de" / "config.py"), str(site / bundled / "dbt_project")]
    before = _snapshot(site)

    demo = _run([str(site / "bin" / "agent-de"), "demo", "--scale", "500"], cwd, env)
    assert "(success)" in demo.stdout and "0 failed" in demo.stdout
    state = cwd / ".agent_de"
    assert (state / "dbt_project" / "target" / "manifest.json").exists()  # dbt ran on the working copy
    assert str(site / bundled / "workspace.yaml") in demo.stdout  # `dagster dev -w` names a file that exists

    # dagster-dbt's deployment step on the packaged project (no working copy in this state dir):
    # dbt writes its target and logs under the state dir. dagster-dbt finds dbt on PATH (an activated venv).
    fresh, bin_dir = tmp_path / "state2", Path(sys.executable).parent
    _run([str(bin_dir / "dagster-dbt"), "project", "prepare-and-package",
          "--file", str(site / "dagster_agent_de" / "dagster" / "project.py")], cwd,
         {**env, "AGENT_DE_STATE_DIR": str(fresh), "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"})
    assert (fresh / "dbt_target" / "manifest.json").exists()

    assert _snapshot(site) == before


def test_a_checkout_uses_the_repository_copies(tmp_path: Path) -> None:
    assert (bundled_project_dir(), bundled_workspace_file()) == (REPO / "dbt_project", REPO / "workspace.yaml")
    assert not is_installed_copy(REPO / "dbt_project")
    assert dbt_target_path(REPO / "dbt_project", tmp_path) == Path("target")  # dbt's default, in the project
