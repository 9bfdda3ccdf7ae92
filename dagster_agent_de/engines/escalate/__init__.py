"""Escalations, the context store and the autonomy policy."""

from __future__ import annotations
