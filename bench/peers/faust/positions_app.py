"""The tradeflux positions job on Faust (faust-streaming): an agent and a Table, AT-LEAST-ONCE.

EnrichedTrade JSON keyed by account in; Position JSON keyed ``account|instrument`` out,
one per trade. The table (in memory, change-logged, Faust's default store) is keyed
``account|instrument``; Faust writes a table change to the changelog partition of the event
being processed (the account's input partition), so no repartition is needed.

The arithmetic is docs/domain-rules.md "Positions" for NEW trades in arrival order, in
Python's default decimal context. The table keeps decimals as strings (exact round trip).

Usage (in bench/peers/.venv-faust), configured by the environment:
    BENCH_BOOTSTRAP=... BENCH_INPUT=... BENCH_OUTPUT=... BENCH_APP_ID=... BENCH_STATE_DIR=...
    BENCH_PARTITIONS=6 python positions_app.py worker -l warning
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

import faust

ZERO = Decimal(0)
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "6"))

app = faust.App(
    os.environ.get("BENCH_APP_ID", "positions-faust"),
    broker=f"kafka://{os.environ.get('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    store="memory://",
    processing_guarantee="at_least_once",
    topic_partitions=PARTITIONS,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    datadir=os.environ.get("BENCH_STATE_DIR", "faust-data"),
)
trades = app.topic(
    os.environ.get("BENCH_INPUT", "trades.enriched"),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=PARTITIONS,
)
positions_out = app.topic(
    os.environ.get("BENCH_OUTPUT", "positions"),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=PARTITIONS,
)
positions = app.Table("positions", default=None, partitions=PARTITIONS)


def fold(held: list[Any] | None, trade: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Fold one NEW trade into its position (average cost); return the state and position."""
    if held is None:
        big_q, a, r, count = ZERO, ZERO, ZERO, 0
    else:
        big_q, a, r, count = Decimal(held[0]), Decimal(held[1]), Decimal(held[2]), held[3]
    qty = Decimal(trade["quantity"])
    p = Decimal(trade["price"])
    m = Decimal(trade["multiplier"])
    q = qty if trade["side"] == "BUY" else -qty
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
    position = {
        "account": trade["account"],
        "instrument": trade["instrument"],
        "currency": trade["currency"],
        "quantity": str(big_q),
        "avg_cost": str(a),
        "realized_pnl": str(r),
        "multiplier": trade["multiplier"],
        "trade_count": count,
        "last_trade_id": trade["trade_id"],
        "as_of": trade["trade_time"],
    }
    return [str(big_q), str(a), str(r), count], position


@app.agent(trades)
async def fold_positions(stream: faust.StreamT[bytes]) -> None:
    """Per trade: fold into the table entry of its position and send the position."""
    async for value in stream:
        trade = json.loads(value)
        if trade["event_type"] != "NEW":  # the bench input: NEW trades only
            continue
        key = f"{trade['account']}|{trade['instrument']}"
        state, position = fold(positions.get(key), trade)
        positions[key] = state
        await positions_out.send(key=key.encode(), value=json.dumps(position).encode())


if __name__ == "__main__":
    app.main()
