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
