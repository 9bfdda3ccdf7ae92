"""Engines: pure logic over a warehouse adapter (no Dagster import; a test enforces it)."""
