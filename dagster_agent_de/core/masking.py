"""Masking of PII values: an HMAC prefix with a per-deployment key.

A plain hash of an e-mail or a phone number can be reversed with a dictionary; an HMAC under a
secret key cannot, and equal values still mask to equal strings, so a masked key can be joined,
counted and compared. The key comes from ``AGENT_DE_MASK_KEY``, else from ``mask.key`` in the
state directory (generated once, readable by the owner only), else (no state directory known)
a key that lives as long as the process.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MASK_PREFIX = "pii:"
KEY_FILE = "mask.key"


class Masker:
    """Masks values with ``HMAC-SHA256(key, value)``, shown as ``pii:`` and 16 hex digits.

    >>> m = Masker(b"k" * 32)
    >>> m.mask("ada@example.com") == m.mask("ada@example.com"), m.mask(None)
    (True, None)
    >>> m.mask("ada@example.com").startswith("pii:"), "ada" in m.mask("ada@example.com")
    (True, False)
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the masking key must be at least 16 bytes")
        self._key = key

    def mask(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and value.startswith(MASK_PREFIX):
            return value  # already masked
        digest = hmac.new(self._key, str(value).encode(), hashlib.sha256).hexdigest()
        return MASK_PREFIX + digest[:16]

    def mask_row(self, row: Mapping[str, Any], columns: Iterable[str]) -> dict[str, Any]:
        """``row`` with the values of ``columns`` (case-insensitive) masked."""
        pii = {c.lower() for c in columns}
        return {k: (self.mask(v) if k.lower() in pii else v) for k, v in row.items()}


def load_mask_key(state_dir: Path | None) -> bytes:
    """The deployment's key: ``AGENT_DE_MASK_KEY``, else ``<state_dir>/mask.key`` (created once)."""
    raw = os.environ.get("AGENT_DE_MASK_KEY")
    if raw:
        return raw.encode()
    if state_dir is None:
        return secrets.token_bytes(32)
    path = Path(state_dir) / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


_current: Masker | None = None


def configure_masking(state_dir: Path | None) -> Masker:
    """Use the deployment's key (see :func:`load_mask_key`) for this process; returns the masker."""
    global _current
    _current = Masker(load_mask_key(state_dir))
    return _current


def masker() -> Masker:
    """The process's masker (``AGENT_DE_MASK_KEY`` or a process-lifetime key until configured)."""
    global _current
    if _current is None:
        _current = Masker(load_mask_key(None))
    return _current
