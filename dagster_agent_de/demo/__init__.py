"""The demo: data generator, incidents and the `agent-de demo` runner."""
