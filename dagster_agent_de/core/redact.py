"""Keep secrets out of audit events and logs."""

from __future__ import annotations

import re

_SECRET_WORDS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|private[_-]?key|access[_-]?key|authorization)"
_PATTERNS = [
    # key = 'value' / key: "value" / key=value
    re.compile(rf"(?i)({_SECRET_WORDS}\w*\s*[:=]\s*)('[^']*'|\"[^\"]*\"|[^\s,;)]+)"),
    # Bearer tokens
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._\-~+/]+=*)"),
    # Anthropic / generic sk- keys
    re.compile(r"()(sk-[A-Za-z0-9_\-]{8,})"),
]


def redact(text: str) -> str:
    """Replace secret values in ``text`` with ``***``.

    >>> redact("ATTACH 'x' (password 'hunter2')") == "ATTACH 'x' (password 'hunter2')"
    False
    >>> redact("token=abc123 and password: 'pw'")
    'token=*** and password: ***'
    """
    out = text
    for pattern in _PATTERNS:
        out = pattern.sub(lambda m: m.group(1) + "***", out)
    # SQL-style "password 'value'" without an operator
    out = re.sub(rf"(?i)({_SECRET_WORDS}\s+)('[^']*')", lambda m: m.group(1) + "***", out)
    return out
