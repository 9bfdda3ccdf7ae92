"""A synthetic dbt project with N models (chains of staging -> intermediate -> marts; a quarter are tables), parsed once by dbt."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def make_project(root: Path, models: int = 2000) -> Path:
    """Write the project and run ``dbt parse``; returns the project dir (manifest in target/)."""
    project = root / "synthetic"
    if (project / "target" / "manifest.json").exists():
        return project
    shutil.rmtree(project, ignore_errors=True)
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: synthetic\nversion: '1.0.0'\nconfig-version: 2\nprofile: synthetic\nmodel-paths: ['models']\n")
    (project / "profiles.yml").write_text(
        f"synthetic:\n  target: duckdb\n  outputs:\n    duckdb:\n      type: duckdb\n      path: {root / 'synthetic.duckdb'}\n")
    sources = max(1, models // 20)
    (project / "models" / "_sources.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n"
        + "".join(f"      - name: t{i}\n" for i in range(sources)))
    for i in range(models):
        layer = i % 4
        if layer == 0:
            sql = f"select id, amount, status from {{{{ source('raw', 't{(i // 4) % sources}') }}}}"
        else:
            parent = f"m{i - 1}"
            other = f"m{max(0, i - 5 - (i % 3))}"
            sql = (f"select a.id, a.amount, b.status from {{{{ ref('{parent}') }}}} a "
                   f"left join {{{{ ref('{other}') }}}} b on a.id = b.id where a.amount > 0")
        if layer == 3:  # the marts: tables, as in a real project (staging and intermediate stay views)
            sql = "{{ config(materialized='table') }}\n" + sql
        (project / "models" / f"m{i}.sql").write_text(sql + "\n")
    dbt = Path(sys.executable).parent / "dbt"
    subprocess.run([str(dbt), "parse", "--project-dir", str(project), "--profiles-dir", str(project), "--quiet"],
                   check=True, cwd=project)
    return project
