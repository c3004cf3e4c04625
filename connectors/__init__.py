"""ubridge's I/O: the runtime, one folder per outside system, the stages' wiring and the CLI."""
