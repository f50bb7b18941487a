"""tradeflux: real-time trade flow processing on Apache Kafka, in memory, exactly once."""

__version__ = "0.1.0"
