"""``ubridge demo``: a local Kafka, simulated outside parties, every stage, and a replay of traffic."""
