"""What every stage shares: the stage loop, the source runner, dead letters, metrics, logs, health."""
