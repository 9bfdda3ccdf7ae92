"""A read-only view of a dbt manifest: nodes, sources, lineage and compiled SQL.

Built once per manifest; every engine (drift impact, reconciliation, investigation) walks
lineage and reads compiled SQL through this one class. No Dagster import.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster_agent_de.errors import ProjectError
from dagster_agent_de.project import load_manifest

_REF = re.compile(r"\{\{\s*ref\(\s*['\"]([^'\"]+)['\"]\s*(?:,\s*['\"]([^'\"]+)['\"]\s*)?\)\s*\}\}")
_SOURCE = re.compile(r"\{\{\s*source\(\s*['\"]([^'\"]+)['\"]\s*,\s*['\"]([^'\"]+)['\"]\s*\)\s*\}\}")
_CONFIG = re.compile(r"\{\{\s*config\(.*?\)\s*\}\}", re.S)
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
_LAST_RUNS = 20
"""How many of the newest ``run_results.json`` files :meth:`Manifest.last_build` reads."""
_THIS = re.compile(r"\{\{-?\s*this\s*-?\}\}")
# ``{% if is_incremental() %} X {% else %} Y {% endif %}`` (no nested ``{% if``): X on an incremental run, else Y
_IS_INCREMENTAL = re.compile(r"\{%-?\s*if\s+is_incremental\(\s*\)\s*-?%\}((?:(?!\{%-?\s*if\b).)*?)"
                             r"(?:\{%-?\s*else\s*-?%\}((?:(?!\{%-?\s*if\b).)*?))?\{%-?\s*endif\s*-?%\}", re.S)


@dataclass(frozen=True)
class Node:
    """A model, seed, snapshot or source, by its dbt unique_id."""

    unique_id: str
    name: str
    resource_type: str
    relation_name: str | None
    database: str | None
    schema: str | None
    identifier: str | None
    raw: dict[str, Any]

    @property
    def is_source(self) -> bool:
        return self.resource_type == "source"

    @property
    def display_name(self) -> str:
        """``name`` for models, ``source.table`` for sources (as dbt users write them)."""
        if self.is_source:
            return f"{self.raw['source_name']}.{self.name}"
        return self.name

    @property
    def asset_key_path(self) -> list[str]:
        """dagster-dbt's default asset key."""
        if self.is_source:
            return [self.raw["source_name"], self.name]
        return [self.name]

    @property
    def meta(self) -> dict[str, Any]:
        """``meta`` from both places dbt accepts it: the property (dbt < 1.10) and ``config:`` (1.10+)."""
        meta = dict(self.raw.get("source_meta") or {})
        meta.update(self.raw.get("meta") or {})
        meta.update((self.raw.get("config") or {}).get("meta") or {})
        return meta

    @property
    def materialized(self) -> str:
        """The model's ``config.materialized`` (``view``, ``table``, ``incremental``, ...; ``""`` for a source)."""
        return str((self.raw.get("config") or {}).get("materialized") or "")

    @property
    def loaded_at_field(self) -> str | None:
        """A source's load-time column: ``config.loaded_at_field`` (dbt 1.10+) or the older property."""
        return _config_or_property(self.raw, "loaded_at_field") or None

    @property
    def freshness(self) -> dict[str, Any]:
        """A source's freshness (``warn_after``/``error_after``): ``config.freshness`` or the older property."""
        return dict(_config_or_property(self.raw, "freshness") or {})

    @property
    def agent_de_meta(self) -> dict[str, Any]:
        got = self.meta.get("agent_de") or {}
        if not isinstance(got, dict):
            raise ProjectError(f"{self.display_name}: meta.agent_de must be a mapping (reconcile:, intents:, runtime:, "
                               f"volume:, investigate:, ...), got {got!r}; fix it in the model's YAML")
        return dict(got)

    @property
    def owner(self) -> str | None:
        return self.meta.get("owner") or (self.raw.get("group") or None)

    @property
    def columns(self) -> dict[str, dict[str, Any]]:
        return dict(self.raw.get("columns") or {})

    def pii_columns(self) -> set[str]:
        out = set()
        for name, col in self.columns.items():
            meta = column_meta(col)
            if (meta.get("agent_de") or {}).get("pii") or meta.get("pii") or "pii" in (col.get("tags") or []):
                out.add(name.lower())
        return out


def column_meta(column: dict[str, Any]) -> dict[str, Any]:
    """A column's ``meta``, from the property (dbt < 1.10) and from ``config:`` (1.10+; wins)."""
    return {**(column.get("meta") or {}), **((column.get("config") or {}).get("meta") or {})}


def _config_or_property(raw: dict[str, Any], name: str) -> Any:
    """``config.<name>`` (where dbt 1.10+ wants it), else the top-level property (older projects)."""
    value = (raw.get("config") or {}).get(name)
    return value if value else raw.get(name)


class Manifest:
    """Lineage and SQL over a parsed ``manifest.json``.

    Args:
        data: the parsed manifest.
        project_dir: the dbt project (to find compiled SQL and current model files).
        compiled_after: compiled SQL under ``target/`` older than this (epoch seconds) is ignored: it was
            compiled for another target (see ``DbtProjectInfo.compiled_after``).
    """

    def __init__(self, data: dict[str, Any], project_dir: Path | None = None, compiled_after: float | None = None) -> None:
        self.data = data
        self.project_dir = project_dir
        self.compiled_after = compiled_after
        self.nodes: dict[str, Node] = {}
        for uid, raw in {**data.get("nodes", {}), **data.get("sources", {})}.items():
            if raw.get("resource_type") not in ("model", "seed", "snapshot", "source"):
                continue
            self.nodes[uid] = Node(
                unique_id=uid,
                name=raw["name"],
                resource_type=raw["resource_type"],
                relation_name=raw.get("relation_name"),
                database=raw.get("database"),
                schema=raw.get("schema"),
                identifier=raw.get("identifier") or raw.get("alias") or raw.get("name"),
                raw=raw,
            )
        self._children: dict[str, list[str]] = {uid: [] for uid in self.nodes}
        self._parents: dict[str, list[str]] = {uid: [] for uid in self.nodes}
        for uid, node in self.nodes.items():
            for parent in (node.raw.get("depends_on") or {}).get("nodes", []):
                if parent in self.nodes:
                    self._parents[uid].append(parent)
                    self._children[parent].append(uid)
        self.exposures: dict[str, dict[str, Any]] = dict(data.get("exposures") or {})

    @classmethod
    def load(cls, path: Path, project_dir: Path | None = None, compiled_after: float | None = None) -> Manifest:
        return cls(load_manifest(path), project_dir or path.parent.parent, compiled_after)

    # -- lookup -----------------------------------------------------------------------------
    @cached_property
    def _by_name(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for uid, node in self.nodes.items():
            out.setdefault(node.display_name.lower(), uid)
            out.setdefault("/".join(node.asset_key_path).lower(), uid)
            if not node.is_source:
                out.setdefault(node.name.lower(), uid)
        return out

    def find(self, name: str) -> Node:
        """A node by model name, ``source.table``, asset key path (``a/b``; a prefixed key such as the
        team translator's ``analytics/fct_orders`` by its tail) or unique_id."""
        if name in self.nodes:
            return self.nodes[name]
        uid = self._by_name.get(name.lower())
        parts = name.lower().split("/")
        while uid is None and len(parts) > 1:
            # an asset key from the Dagster UI with the team's prefix (``analytics/fct_orders``): its tail
            parts = parts[1:]
            uid = self._by_name.get("/".join(parts))
        if uid is None:
            close = sorted(n for n in self._by_name if name.lower().split(".")[-1] in n)[:5]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ProjectError(f"no model or source named {name!r} in the dbt manifest{hint}")
        return self.nodes[uid]

    def source(self, source_name: str, table_name: str) -> Node:
        for node in self.nodes.values():
            if node.is_source and node.raw["source_name"] == source_name and node.name == table_name:
                return node
        raise ProjectError(f"source('{source_name}', '{table_name}') is not defined in the dbt project")

    def models(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.resource_type == "model"]

    def sources(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.is_source]

    def raw_tests(self) -> list[dict[str, Any]]:
        """The manifest's test nodes as dbt wrote them (generic tests carry ``test_metadata``)."""
        return [raw for raw in (self.data.get("nodes") or {}).values() if raw.get("resource_type") == "test"]

    # -- lineage ----------------------------------------------------------------------------
    def parents(self, uid: str) -> list[str]:
        return list(self._parents.get(uid, []))

    def children(self, uid: str) -> list[str]:
        return list(self._children.get(uid, []))

    def _walk(self, start: str, step: Any) -> list[str]:
        seen: dict[str, None] = {}
        queue = deque(step(start))
        while queue:
            uid = queue.popleft()
            if uid in seen:
                continue
            seen[uid] = None
            queue.extend(step(uid))
        return list(seen)

    def upstream(self, uid: str) -> list[str]:
        """All ancestors, nearest first (breadth-first)."""
        return self._walk(uid, self.parents)

    def downstream(self, uid: str) -> list[str]:
        """All descendants, nearest first (breadth-first)."""
        return self._walk(uid, self.children)

    def exposures_of(self, uids: Iterable[str]) -> list[str]:
        wanted = set(uids)
        return sorted(
            e["name"] for e in self.exposures.values()
            if wanted & set((e.get("depends_on") or {}).get("nodes", []))
        )

    # -- SQL --------------------------------------------------------------------------------
    def model_file(self, node: Node) -> Path | None:
        if self.project_dir is None or node.is_source:
            return None
        return self.project_dir / node.raw["original_file_path"]

    def last_build(self, uid: str) -> tuple[str, str] | None:
        """(status, when) of ``uid`` in the last dbt run that ran it: the newest ``run_results.json`` under
        ``target/`` (dbt's own, or a dagster-dbt run's ``target/<run>/``) that includes it (``success``,
        ``error``, ``skipped``...); None when none does."""
        if self.project_dir is None or self.compiled_after == float("inf"):
            return None  # no project, or its target/ holds another target's runs
        target = self.project_dir / "target"
        found: list[tuple[float, Path]] = []
        for path in [target / "run_results.json", *target.glob("*/run_results.json")]:
            try:
                found.append((path.stat().st_mtime, path))
            except OSError:
                continue
        # the newest runs only: dagster-dbt keeps one directory per run, and this is read per reconciliation
        for _mtime, path in sorted(found, key=lambda f: f[0], reverse=True)[:_LAST_RUNS]:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            when = str((data.get("metadata") or {}).get("generated_at") or "")[:19].replace("T", " ")
            for r in data.get("results") or []:
                if isinstance(r, dict) and r.get("unique_id") == uid:
                    return str(r.get("status") or ""), when
        return None

    def compiled_sql(self, uid: str) -> str | None:
        """The SQL the model runs, as fresh as can be found.

        The newest of: compiled files under ``target/`` (dbt's and dagster-dbt's per-run
        dirs; not those compiled for another target, see ``compiled_after``) and the model file on disk rendered for ``ref``/``source``/``config`` (for
        models using other Jinja that last step returns ``None``). The manifest's own
        ``compiled_code`` is the fallback when no project dir is known.
        """
        node = self.nodes[uid]
        if node.is_source:
            return None
        candidates: list[tuple[float, str]] = []
        path = self.model_file(node)
        if path is not None and path.exists():
            candidates += self._compiled_files(Path(node.raw["package_name"]) / node.raw["original_file_path"])
            rendered = self.render(path.read_text(), this=node.relation_name,
                                   incremental=node.materialized == "incremental")
            if rendered is not None:
                candidates.append((path.stat().st_mtime, rendered))
        if candidates:
            return max(candidates, key=lambda c: c[0])[1]
        return node.raw.get("compiled_code")

    def _compiled_files(self, rel: Path) -> list[tuple[float, str]]:
        """(mtime, SQL) of ``rel`` compiled under ``target/`` (dbt's ``compiled/`` and dagster-dbt's per-run
        dirs), except what was compiled for another target (older than ``compiled_after``)."""
        target = self.project_dir / "target" if self.project_dir else None
        if target is None or not target.exists():
            return []
        out = []
        for compiled in [target / "compiled" / rel, *target.glob(f"*/compiled/{rel.as_posix()}")]:
            if compiled.is_file() and (self.compiled_after is None or compiled.stat().st_mtime >= self.compiled_after):
                out.append((compiled.stat().st_mtime, compiled.read_text()))
        return out

    def compiled_test_sql(self, test: dict[str, Any]) -> str | None:
        """The SQL a dbt test node selects its failing rows with, as fresh as can be found.

        The newest compiled file under ``target/`` (dbt's ``target/compiled/<package>/<file>``, a
        generic test under its YAML file's path, and dagster-dbt's per-run dirs; not those compiled for another
        target, see ``compiled_after``), else the manifest's ``compiled_code``; ``None`` when the test was never
        compiled (a manifest from ``dbt parse``).
        """
        rel = Path(str(test.get("package_name") or "")) / str(test.get("original_file_path") or "")
        if str(test.get("original_file_path") or "").endswith((".yml", ".yaml")):
            rel = rel / str(test.get("path") or f"{test.get('name')}.sql")
        candidates = self._compiled_files(rel) if test.get("original_file_path") else []
        if candidates:
            return max(candidates, key=lambda c: c[0])[1]
        return test.get("compiled_code") or None

    def render(self, raw_sql: str, this: str | None = None, incremental: bool = False) -> str | None:
        """Render ``ref``/``source``/``config`` the way dbt would; ``None`` if other Jinja remains.

        With ``this`` (the model's own relation): ``{{ this }}`` too, and an ``{% if is_incremental() %}``
        block as dbt compiles it: with ``incremental`` (an incremental model, its table built: the run whose
        check failed) its body, the incremental filter; else its ``{% else %}`` part.

        >>> sql = "select * from s {% if is_incremental() %}where t > (select max(t) from {{ this }}){% endif %}"
        >>> Manifest({"nodes": {}}).render(sql, this='"db"."main"."m"', incremental=True)
        'select * from s where t > (select max(t) from "db"."main"."m")'
        >>> Manifest({"nodes": {}}).render(sql, this='"db"."main"."m"')
        'select * from s '
        """

        def ref(m: re.Match[str]) -> str:
            name = m.group(2) or m.group(1)
            try:
                node = self.find(name)
            except ProjectError:
                return m.group(0)
            return node.relation_name or m.group(0)

        def source(m: re.Match[str]) -> str:
            try:
                return self.source(m.group(1), m.group(2)).relation_name or m.group(0)
            except ProjectError:
                return m.group(0)

        sql = _JINJA_COMMENT.sub("", raw_sql)
        sql = _CONFIG.sub("", sql)
        if this:
            sql = _IS_INCREMENTAL.sub(lambda m: m.group(1) if incremental else (m.group(2) or ""), sql)
            sql = _THIS.sub(lambda _m: this, sql)
        sql = _REF.sub(ref, sql)
        sql = _SOURCE.sub(source, sql)
        if "{{" in sql or "{%" in sql:
            return None
        return sql
