"""The query service: a read model of the output topics, its HTTP JSON API and the dashboard.

``readmodel`` holds the tables in memory (no Kafka), ``follower`` fills them from
Kafka, ``live`` fans changes out as server-sent events, ``service_metrics`` scrapes
the other services' /metrics, ``api`` is the HTTP surface and ``server`` puts them
together. The dashboard's built assets live in ``static/`` (sources in ``web/``).
"""
