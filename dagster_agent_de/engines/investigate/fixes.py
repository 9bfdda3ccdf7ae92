"""Build proposed fixes as unified diffs of model files."""

from __future__ import annotations

import difflib
import re

from dagster_agent_de.core.models import ProposedFix
from dagster_agent_de.manifest import Manifest, Node


def file_diff(manifest: Manifest, node: Node, transform, description: str) -> ProposedFix | None:
    """Apply ``transform`` to the model file's text; a diff if it changed anything."""
    path = manifest.model_file(node)
    if path is None or not path.exists():
        return ProposedFix(description=description)
    before = path.read_text()
    after = transform(before)
    if after == before:
        return ProposedFix(description=description)
    rel = node.raw["original_file_path"]
    diff = "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{rel}", tofile=f"b/{rel}"))
    return ProposedFix(description=description, diff=diff, files=[rel])


def sub_once(pattern: str, repl: str, flags: int = re.I):
    return lambda text: re.sub(pattern, repl, text, count=1, flags=flags)


_NOT_ALIAS = r"(?!(?:on|using|where|left|right|inner|full|cross|join|group|order|qualify|limit|natural)\b)"


def join_pattern(names: list[str]) -> re.Pattern[str] | None:
    """The join of a model file to one of ``names`` (a CTE, or the model/table a ``ref()``/``source()`` names).

    Groups: ``kind`` (``inner ``, ``left outer ``, ... or empty), ``target`` (as written), ``alias``.

    >>> m = join_pattern(["payments"]).search("from orders inner join payments as p on p.id = orders.id")
    >>> (m.group("kind"), m.group("target"), m.group("alias"))
    ('inner ', 'payments', ' as p')
    >>> join_pattern(["stg_payments"]).search("left join {{ ref('stg_payments') }} p on x").group("target")
    "{{ ref('stg_payments') }}"
    """
    alts = []
    for name in dict.fromkeys(n for n in names if n):
        n = re.escape(name)
        alts.append(rf"\{{\{{\s*(?:ref|source)\((?:[^)]*?['\"])?{n}['\"]\s*\)\s*\}}\}}")
        alts.append(rf"(?<![\w.\"]){n}(?![\w.\"])")
    if not alts:
        return None
    return re.compile(rf"(?i)\b(?P<kind>(?:(?:inner|left|right|full)(?:\s+outer)?|cross)\s+)?join\s+(?P<target>{'|'.join(alts)})"
                      rf"(?P<alias>\s+(?:as\s+)?{_NOT_ALIAS}\w+)?")


def rewrite_join(text: str, names: list[str], *, kind: str | None = None, target: str | None = None) -> str:
    """Change the first join to ``names`` in a model file: its kind (``left``) and/or what it joins."""
    pat = join_pattern(names)
    m = pat.search(text) if pat else None
    if m is None:
        return text
    new_kind = f"{kind} " if kind is not None else (m.group("kind") or "")
    new_target = m.group("target") if target is None else target.replace("{target}", m.group("target"))
    alias = m.group("alias") or ""
    if target is not None and not alias:
        alias = f" as {names[0]}"
    return text[: m.start()] + f"{new_kind}join {new_target}{alias}" + text[m.end():]


def apply_diff(manifest: Manifest, fix: ProposedFix) -> list[str]:
    """Apply a proposed fix (unified diff of whole files) to the project; returns files changed.

    Only used by humans or a policy that allows it (see the autonomy policy).
    """
    changed = []
    if manifest.project_dir is None:
        return changed
    for block in re.split(r"(?m)^--- a/", fix.diff)[1:]:
        header, _, body = block.partition("\n")
        rel = header.strip()
        path = manifest.project_dir / rel
        lines = path.read_text().splitlines(keepends=True)
        out: list[str] = []
        i = 0
        for hunk in re.split(r"(?m)^@@ ", body)[1:]:
            m = re.match(r"-(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@.*\n", hunk)
            assert m, "malformed hunk"
            start = int(m.group(1)) - 1
            out.extend(lines[i:start])
            i = start
            for line in hunk[m.end():].splitlines(keepends=True):
                if line.startswith("+++") or line.startswith("---"):
                    continue
                if line.startswith(" "):
                    out.append(lines[i])
                    i += 1
                elif line.startswith("-"):
                    i += 1
                elif line.startswith("+"):
                    out.append(line[1:])
        out.extend(lines[i:])
        path.write_text("".join(out))
        changed.append(rel)
    return changed
