"""The router stage: project events to utility tasks."""
