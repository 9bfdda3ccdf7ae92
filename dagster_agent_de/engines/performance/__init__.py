"""The performance investigation: why a model got slow, from its analyzed plan, down to a verified diff.

DuckDB's ``EXPLAIN (ANALYZE, FORMAT JSON)`` (run read-only through the audited warehouse) gives the
operators and their numbers; the pattern library (``detectors/``) names the likely cause; the top
hypothesis's rewrite is timed and its results compared with the original before it is proposed.
"""

from __future__ import annotations

from dagster_agent_de.engines.performance.detectors import DETECTORS
from dagster_agent_de.engines.performance.engine import detect, investigate_model, investigate_sql
from dagster_agent_de.engines.performance.models import PerfContext, PerfFinding, PerfHypothesis, Verification
from dagster_agent_de.engines.performance.plan import Operator, QueryPlan, explain_analyze, parse_plan
from dagster_agent_de.engines.performance.runtime import (
    RuntimePolicy,
    RuntimeVerdict,
    judge_runtime,
    record_runtime,
    runtime_history,
    runtimes_from_run_results,
)
from dagster_agent_de.engines.performance.verify import fingerprint_sql, verify

__all__ = [
    "DETECTORS",
    "Operator",
    "PerfContext",
    "PerfFinding",
    "PerfHypothesis",
    "QueryPlan",
    "RuntimePolicy",
    "RuntimeVerdict",
    "Verification",
    "detect",
    "explain_analyze",
    "fingerprint_sql",
    "investigate_model",
    "investigate_sql",
    "judge_runtime",
    "parse_plan",
    "record_runtime",
    "runtime_history",
    "runtimes_from_run_results",
    "verify",
]
