"""Adapters: warehouses, the audit log, LLM and sources of truth."""

from __future__ import annotations
