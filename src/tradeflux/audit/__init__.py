"""The operator's controls, computed from the topics themselves (docs/audit.md).

- :mod:`~tradeflux.audit.run`: ``tradeflux audit``, which reconciles a running or stopped
  system from its topics read read_committed: per service, what each input record became
  (output, dead letter, dropped duplicate); positions against the fold of the enriched
  trades; P&L against the positions marked at the prices and FX; obligations against the
  netting of the trades; risk alerts alternating per limit.
- :mod:`~tradeflux.audit.replay`: ``tradeflux replay``, which re-runs a time range of
  ``trades.raw`` through the services into a fresh topic prefix.

Kafka is reached only through the runtime's boundary (:mod:`tradeflux.stream.kafka`).
"""
