"""SQL analysis with sqlglot: the read-only guard, lineage and facts of compiled models."""

from __future__ import annotations
