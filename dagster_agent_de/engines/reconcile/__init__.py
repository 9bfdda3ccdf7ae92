"""Reconciliation: a pipeline output against a source of truth, pushed down into the warehouse."""

from __future__ import annotations

from dagster_agent_de.engines.reconcile.engine import reconcile, reconcile_all
from dagster_agent_de.engines.reconcile.report import ReconcileReport
from dagster_agent_de.engines.reconcile.spec import (
    InvalidSpec,
    ReconcileSpec,
    parse_specs,
    specs_from_manifest,
)

__all__ = ["InvalidSpec", "ReconcileReport", "ReconcileSpec", "parse_specs", "reconcile", "reconcile_all", "specs_from_manifest"]
