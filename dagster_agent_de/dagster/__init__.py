"""The Dagster wiring: resources, checks, sensors, jobs, Definitions, the findings translator."""

from __future__ import annotations
