"""Adapters: warehouses, the audit log, LLM and sources of truth."""
