"""The local Apache Kafka broker that the demo and the integration tests run against (DESIGN §10)."""
