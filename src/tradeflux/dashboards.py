"""Grafana dashboards of tradeflux, built from code with grafana-foundation-sdk.

An overview of the whole system and one dashboard per service (the shipped services,
the gateway and the query service). Nothing is committed as JSON: ``./dev`` writes them
at build time (``python -m tradeflux.dashboards build/grafana``), and a test checks that
every query names only metrics the services export (against live ``/metrics``) or
recording rules of ``monitoring/rules``.

Every panel reads the Prometheus data source picked in the dashboard's ``datasource``
variable; service dashboards have an ``instance`` variable (the instance id).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as gm

from tradeflux.services import SHIPPED

EDGE_SERVICES = ("gateway", "query")
"""Services that are not stream services but export metrics of their own."""

_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*\w+\)$")
DATASOURCE = gm.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["tradeflux", "generated"]


@dataclass(frozen=True)
class Query:
    """A PromQL expression and its legend (``{{label}}`` templates)."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Chart:
    """A panel: a time series (default) or a single figure (``stat``)."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"
    width: int = 12


def _target(query: Query, ref: str) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
    return target.legend_format(query.legend) if query.legend else target


def _panel(chart: Chart, panel_id: int) -> gd.Panel:
    builder: Any
    if chart.kind == "stat":
        builder = stat.Panel().height(4)
    else:
        builder = timeseries.Panel().height(8).fill_opacity(10).line_width(1)
    builder = builder.id(panel_id).title(chart.title).unit(chart.unit).span(chart.width)
    builder = builder.datasource(DATASOURCE)
    if chart.description:
        builder = builder.description(chart.description)
    for i, query in enumerate(chart.queries):
        builder = builder.with_target(_target(query, chr(ord("A") + i)))
    return builder  # type: ignore[no-any-return]


def _dashboard(
    uid: str,
    title: str,
    description: str,
    rows: Sequence[tuple[str, Sequence[Chart]]],
    instances_from: str | None = None,
) -> gd.Dashboard:
    board = (
        gd.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .refresh("10s")
        .time("now-1h", "now")
        .timezone("utc")
        .with_variable(gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    if instances_from is not None:
        board = board.with_variable(
            gd.QueryVariable("instance")
            .label("Instance")
            .datasource(DATASOURCE)
            .query(f"label_values({instances_from}, instance)")
            .include_all(True)
            .all_value(".*")
            .multi(True)
            .refresh(gm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
    panel_id = 0
    for row_title, charts in rows:
        panel_id += 1
        board = board.with_row(gd.Row(row_title).id(panel_id))
        for chart in charts:
            panel_id += 1
            board = board.with_panel(_panel(chart, panel_id))
    return board


def _rate(metric: str, selector: str, by: str = "") -> str:
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}(rate({metric}{{{selector}}}[$__rate_interval]))"


def _quantile(q: str, metric: str, selector: str) -> str:
    return (
        f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{selector}}}"
        "[$__rate_interval])))"
    )


def overview() -> gd.Dashboard:
    """Return the dashboard of the whole system: is every service up, keeping up, clean."""
    health = [
        Chart(
            "Instances up",
            (Query("tradeflux:instances_up:sum", "{{service}}"),),
            kind="stat",
            width=16,
            description="Scrape targets answering, per service (recording rule).",
        ),
        Chart(
            "Alerts firing",
            (Query('count(ALERTS{alertstate="firing", alertname=~"Tradeflux.*"}) or vector(0)'),),
            kind="stat",
            width=8,
        ),
    ]
    flow = [
        Chart("Records in per second", (Query("tradeflux:records_in:rate1m", "{{service}}"),)),
        Chart(
            "Records out per second, by topic",
            (Query("sum by (topic) (tradeflux:records_out:rate1m)", "{{topic}}"),),
        ),
        Chart(
            "Trades accepted by the gateway per second",
            (Query(_rate("tradeflux_gateway_http_records_accepted_total", ""), "HTTP"),),
        ),
        Chart(
            "Consumer lag",
            (Query("tradeflux:consumer_lag_records:sum", "{{service}}"),),
            description="Records waiting in each service's input partitions.",
        ),
    ]
    trouble = [
        Chart(
            "Dead letters per second, by reason",
            (Query("tradeflux:dead_letters_by_reason:rate5m", "{{service}} {{reason}}"),),
        ),
        Chart(
            "End-to-end latency p99",
            (Query("tradeflux:end_to_end_latency_seconds:p99_5m", "{{service}}"),),
            unit="s",
            description="From an input record's timestamp to the commit of its batch; "
            "objective 99% within 1 s per service.",
        ),
        Chart(
            "Records over the 1 s objective",
            (Query("tradeflux:end_to_end_latency:slow_ratio5m", "{{service}}"),),
            unit="percentunit",
        ),
        Chart(
            "Aborted transactions (10 min)",
            (Query("tradeflux:transaction_aborts:increase10m", "{{service}}"),),
        ),
    ]
    return _dashboard(
        "tradeflux-overview",
        "tradeflux / overview",
        "Every service of tradeflux: up, throughput, lag, dead letters, latency, aborts.",
        [("Health", health), ("Flow", flow), ("Trouble", trouble)],
    )


def _chart(title: str, expr: str, legend: str = "", **options: Any) -> Chart:
    """Return a chart of one query."""
    return Chart(title, (Query(expr, legend),), **options)


def _stream_rows(service: str) -> list[tuple[str, list[Chart]]]:
    sel = f'service="{service}", instance=~"$instance"'
    latency_s = "tradeflux_end_to_end_latency_seconds"
    throughput = [
        _chart(
            "Records in per second",
            _rate("tradeflux_records_in_total", sel, "instance"),
            "{{instance}}",
        ),
        _chart(
            "Records out per second, by topic",
            _rate("tradeflux_records_out_total", sel, "topic"),
            "{{topic}}",
        ),
        _chart(
            "Business events per second",
            _rate("tradeflux_events_total", sel, "event"),
            "{{event}}",
        ),
        _chart(
            "Dead letters per second, by reason",
            f'tradeflux:dead_letters_by_reason:rate5m{{service="{service}"}}',
            "{{reason}}",
        ),
    ]
    latency = [
        Chart(
            "End-to-end latency",
            (
                Query(_quantile("0.5", latency_s, sel), "p50"),
                Query(_quantile("0.99", latency_s, sel), "p99"),
            ),
            unit="s",
            description="From an input record's timestamp to the commit of its batch.",
        ),
        Chart(
            "Batch processing and commit, p99",
            (
                Query(_quantile("0.99", "tradeflux_batch_process_seconds", sel), "process"),
                Query(_quantile("0.99", "tradeflux_batch_commit_seconds", sel), "commit"),
            ),
            unit="s",
        ),
        _chart(
            "Records per batch (mean)",
            f"{_rate('tradeflux_batch_records_sum', sel)} / "
            f"{_rate('tradeflux_batch_records_count', sel)}",
            "records",
        ),
        _chart(
            "Aborted transactions per second",
            _rate("tradeflux_transaction_aborts_total", sel, "instance"),
            "{{instance}}",
        ),
    ]
    state = [
        _chart(
            "Consumer lag, by partition",
            f"sum by (partition) (tradeflux_consumer_lag_records{{{sel}}})",
            "{{partition}}",
        ),
        _chart(
            "Assigned partitions, by instance",
            f"sum by (instance) (tradeflux_assigned_partitions{{{sel}}})",
            "{{instance}}",
        ),
        _chart(
            "Store keys, by store",
            f"sum by (store) (tradeflux_store_keys{{{sel}}})",
            "{{store}}",
        ),
        _chart(
            "Changelog records applied by the last restore, by store",
            f"sum by (store) (tradeflux_restore_records{{{sel}}})",
            "{{store}}",
        ),
    ]
    return [("Throughput", throughput), ("Latency", latency), ("Partitions and state", state)]


def _query_rows() -> list[tuple[str, list[Chart]]]:
    sel = 'service="query", instance=~"$instance"'
    reading = [
        _chart(
            "Records read per second",
            _rate("tradeflux_records_in_total", sel, "instance"),
            "{{instance}}",
        ),
        _chart(
            "Consumer lag, by topic and partition",
            f"sum by (partition) (tradeflux_consumer_lag_records{{{sel}}})",
            "{{partition}}",
        ),
        _chart(
            "Assigned partitions",
            f"sum by (instance) (tradeflux_assigned_partitions{{{sel}}})",
            "{{instance}}",
        ),
    ]
    return [("Reading", reading)]


def _gateway_rows() -> list[tuple[str, list[Chart]]]:
    sel = 'service="gateway", instance=~"$instance"'
    http = [
        _chart(
            "POST /v1/trades per second, by status",
            _rate("tradeflux_gateway_http_requests_total", sel, "status"),
            "{{status}}",
        ),
        _chart(
            "Trades accepted per second",
            _rate("tradeflux_gateway_http_records_accepted_total", sel, "instance"),
            "{{instance}}",
        ),
    ]
    fix = [
        _chart(
            "FIX messages per second, by outcome",
            _rate("tradeflux_gateway_fix_messages_total", sel, "outcome"),
            "{{outcome}}",
        ),
        _chart(
            "FIX sessions logged on",
            f"tradeflux_gateway_fix_session_logged_on{{{sel}}}",
            "{{session}}",
        ),
    ]
    return [("HTTP", http), ("FIX", fix)]


def service_dashboard(service: str) -> gd.Dashboard:
    """Return the dashboard of one service (a shipped service, ``gateway`` or ``query``)."""
    up = Chart(
        "Instances up",
        (Query(f'sum(up{{job="tradeflux", service="{service}"}})'),),
        kind="stat",
        width=24,
    )
    # The instance variable lists instance ids: the stream services and the query service
    # label their samples with theirs; the gateway's samples carry the target's address.
    instances_from = f'tradeflux_records_in_total{{service="{service}"}}'
    if service == "gateway":
        rows = _gateway_rows()
        instances_from = 'up{job="tradeflux", service="gateway"}'
    elif service == "query":
        rows = _query_rows()
    elif service in SHIPPED:
        rows = _stream_rows(service)
    else:
        raise ValueError(f"no service {service!r}; known: {', '.join(all_services())}")
    return _dashboard(
        f"tradeflux-{service}",
        f"tradeflux / {service}",
        f"The {service} service: its instances, throughput, latency, partitions and state.",
        [("Instances", [up]), *rows],
        instances_from=instances_from,
    )


def all_services() -> tuple[str, ...]:
    """Return every service that has a dashboard: the shipped ones, the gateway, the query."""
    return (*SHIPPED, *EDGE_SERVICES)


def dashboards() -> dict[str, dict[str, Any]]:
    """Return every dashboard as Grafana's JSON model, by uid."""
    boards = [overview(), *(service_dashboard(s) for s in all_services())]
    encoder = JSONEncoder(sort_keys=True)
    out: dict[str, dict[str, Any]] = {}
    for board in boards:
        model: dict[str, Any] = json.loads(encoder.encode(board.build()))
        out[str(model["uid"])] = model
    return out


def expressions(model: dict[str, Any]) -> Iterator[str]:
    """Yield every PromQL expression of a dashboard: its panels' and its variables' queries.

    A variable's ``label_values(selector, label)`` yields its selector.
    """
    for panel in model.get("panels", []):
        for target in panel.get("targets", []) or []:
            if target.get("expr"):
                yield str(target["expr"])
    for variable in (model.get("templating") or {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query") if isinstance(query, dict) else query
            if text:
                # Grafana's label_values(selector, label) asks Prometheus for the selector
                yield _LABEL_VALUES.sub(r"\1", str(text))


def write_dashboards(folder: Path) -> list[Path]:
    """Write ``<uid>.json`` per dashboard into ``folder``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for uid, model in sorted(dashboards().items()):
        path = folder / f"{uid}.json"
        path.write_text(json.dumps(model, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Write every dashboard into the folder given (``python -m tradeflux.dashboards DIR``)."""
    parser = argparse.ArgumentParser(prog="python -m tradeflux.dashboards", description=__doc__)
    parser.add_argument("folder", help="where to write <uid>.json, e.g. build/grafana")
    args = parser.parse_args(argv)
    paths = write_dashboards(Path(args.folder))
    print(f"wrote {len(paths)} Grafana dashboards to {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
