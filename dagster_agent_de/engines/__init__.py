"""Engines: pure logic over a warehouse adapter (no Dagster import; a test enforces it)."""

from __future__ import annotations
