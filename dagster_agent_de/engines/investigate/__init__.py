"""Investigation: from a failed check to a root-cause finding with evidence and a proposed fix."""

from __future__ import annotations

from dagster_agent_de.engines.investigate.engine import investigate
from dagster_agent_de.engines.investigate.models import Failure, Hypothesis

__all__ = ["Failure", "Hypothesis", "investigate"]
