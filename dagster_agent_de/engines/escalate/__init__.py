"""Escalations, the context store and the autonomy policy."""
