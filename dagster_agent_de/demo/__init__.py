"""The demo: data generator, incidents and the `agent-de demo` runner."""

from __future__ import annotations
