"""Fetching, starting and stopping a local Apache Kafka (1 or 3 KRaft nodes), and topics."""
