"""One module per microservice: each binds domain rules to the stream runtime."""

SHIPPED = (
    "validator",
    "positions",
    "pnl",
    "risk",
    "repartition",
    "analytics",
    "settlement",
    "ticker-settlement",
    "reporting",
    "sessions",
    "allocation-feed",
    "allocations",
    "confirmations",
)
"""The shipped services, in pipeline order; ``tradeflux run NAME`` runs ``<NAME>:SERVICE``.

A ``-`` in NAME is a ``_`` in the module's name (``ticker-settlement``: ticker_settlement).
"""


def service_target(name: str) -> str:
    """Return the ``module:attribute`` of shipped service ``name`` (``-`` becomes ``_``)."""
    return f"tradeflux.services.{name.replace('-', '_')}:SERVICE"
