"""SQL analysis with sqlglot: the read-only guard, lineage and facts of compiled models."""
