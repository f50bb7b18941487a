"""The tradeflux positions job on Quix Streams (bench/compare.py's peer).

EnrichedTrade JSON keyed by account in; Position JSON keyed ``account|instrument`` out,
one per trade. Quix Streams' default state store (RocksDB, change-logged), exactly-once.
Quix state is scoped to the message key (the account), so the position of an instrument
is the state entry named by the instrument: no repartition is needed.

The arithmetic is docs/domain-rules.md "Positions" for NEW trades in arrival order, in
Python's default decimal context, as tradeflux computes it. State keeps decimals as
strings (exact round trip; Quix's JSON state serializer knows no Decimal).

Usage (in bench/peers/.venv-quix):
    python positions_app.py BOOTSTRAP INPUT OUTPUT CONSUMER_GROUP STATE_DIR [COMMIT_S|default]
"""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

from quixstreams import Application, State

ZERO = Decimal(0)


def fold(value: dict[str, Any], state: State) -> dict[str, Any]:
    """Fold one NEW trade into its position (average cost) and return the new position."""
    held = state.get(value["instrument"])
    if held is None:
        big_q, a, r, count = ZERO, ZERO, ZERO, 0
    else:
        big_q, a, r, count = Decimal(held[0]), Decimal(held[1]), Decimal(held[2]), held[3]
    qty = Decimal(value["quantity"])
    p = Decimal(value["price"])
    m = Decimal(value["multiplier"])
    q = qty if value["side"] == "BUY" else -qty
    if big_q == 0 or (q > 0) == (big_q > 0):
        a = (abs(big_q) * a + abs(q) * p) / (abs(big_q) + abs(q))
        big_q = big_q + q
    else:
        c = min(abs(q), abs(big_q))
        r = r + (p - a) * c * m if big_q > 0 else r + (a - p) * c * m
        new_q = big_q + q
        if new_q == 0:
            a = ZERO
        elif (new_q > 0) != (big_q > 0):
            a = p
        big_q = new_q
    count += 1
    state.set(value["instrument"], [str(big_q), str(a), str(r), count])
    return {
        "account": value["account"],
        "instrument": value["instrument"],
        "currency": value["currency"],
        "quantity": str(big_q),
        "avg_cost": str(a),
        "realized_pnl": str(r),
        "multiplier": value["multiplier"],
        "trade_count": count,
        "last_trade_id": value["trade_id"],
        "as_of": value["trade_time"],
    }


def main() -> None:
    bootstrap, source, target, group, state_dir = sys.argv[1:6]
    commit = sys.argv[6] if len(sys.argv) > 6 else "default"
    options: dict[str, Any] = {}
    if commit != "default":
        options["commit_interval"] = float(commit)
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=state_dir,
        loglevel="WARNING",
        **options,
    )
    trades = app.topic(source, key_deserializer="string", value_deserializer="json")
    positions = app.topic(target, key_serializer="string", value_serializer="json")
    sdf = app.dataframe(trades)
    sdf = sdf.filter(lambda value: value["event_type"] == "NEW")  # the bench input: NEW only
    sdf = sdf.apply(fold, stateful=True)
    sdf.to_topic(positions, key=lambda value: f"{value['account']}|{value['instrument']}")
    app.run()


if __name__ == "__main__":
    main()
