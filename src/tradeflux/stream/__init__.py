"""The stream runtime: exactly-once micro-batches over Kafka with in-memory state stores."""
