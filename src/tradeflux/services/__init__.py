"""One module per microservice: each binds domain rules to the stream runtime."""

SHIPPED = (
    "validator",
    "positions",
    "pnl",
    "risk",
    "repartition",
    "analytics",
    "settlement",
    "allocation-feed",
    "allocations",
    "confirmations",
)
"""The shipped services, in pipeline order; ``tradeflux run NAME`` runs ``<NAME>:SERVICE``."""
