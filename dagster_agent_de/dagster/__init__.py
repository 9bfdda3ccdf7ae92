"""The Dagster wiring: resources, checks, sensors, jobs, Definitions, the findings translator."""
