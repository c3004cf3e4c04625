"""The operations surface: stage status, pauses and restarts, dead letters, offsets (API, CLI, followers)."""
