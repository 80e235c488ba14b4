"""The overview (``/ui/``, the UI's landing page) and ``/api/stats``: the same numbers twice.

The store's part comes from ``StoreInspector.stats`` (rollups, not a scan of every event); the
rejected webhooks from this process's ``RejectionLog`` (never the store: an unauthenticated
request must not cause a write). A store without ``StoreInspector`` (Redis) shows the rejected
webhooks only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from markupsafe import Markup

from relay.runtime import Runtime
from relay.store.base import PeriodStats, Series, StoreInspector, StoreStats
from relay.ui.api import _authed
from relay.ui.charts import Bars, Stacked, horizontal_bars, stacked_bars
from relay.ui.pages import _page, _redirect, _session
from relay.ui.present import agent_name
from relay.ui.state import UI, UiState

__all__ = ["EVENT_NAMES", "OUTCOME_NAMES", "add_routes", "overview_json"]

EVENT_NAMES = {
    "RUN_STARTED": "started",
    "RUN_PROGRESS": "progress",
    "RUN_FINISHED": "finished",
    "other": "other",
}
"""Events are stacked by flag; every flag but these three counts as ``other``."""
OUTCOME_NAMES = {"sent": "sent", "retry": "retried", "dead": "dead"}
"""Deliveries are the attempts that ended in the bucket: sent, a counted retry, or dead."""
LATENCY_PRECISION = 0.09
"""Latency percentiles come from a histogram: within ±9%."""
PERIODS = (
    ("24h", "Last 24 hours", "hour", 3),
    ("30d", "Last 30 days", "day", 5),
)
"""(id, heading, bucket, label every n-th bucket)."""


def _bucket_label(start: float, bucket: str) -> str:
    moment = datetime.fromtimestamp(start, UTC)
    return moment.strftime("%H:00" if bucket == "hour" else "%m-%d")


def _since(now: float, period: str) -> float:
    if period == "24h":
        return (now // 3600 - 23) * 3600
    return (now // 86400 - 29) * 86400


def _series_json(series: Series, names: dict[str, str]) -> dict[str, list[int]]:
    return {names[key]: list(values) for key, values in series.stacks}


def _period_json(runtime: Runtime, period: PeriodStats) -> dict[str, Any]:
    return {
        "starts": list(period.events.starts),
        "events": _series_json(period.events, EVENT_NAMES),
        "deliveries": _series_json(period.deliveries, OUTCOME_NAMES),
        "agents": [
            {
                "agent_id": a.agent_id,
                "agent": agent_name(runtime, a.agent_id),
                "finished": a.finished,
                "failed": a.failed,
                "partial_complete": a.partial,
                "failure_rate": round(a.failure_rate, 4),
            }
            for a in period.agents
        ],
        "latency": [
            {
                "channel": c.channel,
                "sent": c.sent,
                "p50_seconds": round(c.p50, 4),
                "p95_seconds": round(c.p95, 4),
            }
            for c in period.latency
        ],
    }


def overview_json(state: UiState, stats: StoreStats | None, now: float) -> dict[str, Any]:
    """``/api/stats``'s answer; ``stats`` None: the store has no aggregates (the store's parts
    are null)."""
    runtime = state.live.current
    periods: dict[str, Any] = {}
    for key, _, bucket, _ in PERIODS:
        period = None if stats is None else (stats.hours if key == "24h" else stats.days)
        entry: dict[str, Any] = {"bucket": bucket}
        entry.update(_period_json(runtime, period) if period is not None else {})
        entry["rejected"] = [
            {"reason": reason, "count": count}
            for reason, count in state.rejections.by_reason(_since(now, key))
        ]
        periods[key] = entry
    return {
        "now": now,
        "store_stats": stats is not None,
        "latency_precision": LATENCY_PRECISION,
        "periods": periods,
        "dead_letters": None
        if stats is None
        else [{"channel": channel, "count": count} for channel, count in stats.dead_letters],
        "rejected_scope": "this process, since it started",
    }


async def _stats(state: UiState, now: float) -> StoreStats | None:
    store = state.store
    return await store.stats(now) if isinstance(store, StoreInspector) else None


# --- the page ------------------------------------------------------------------------------


@dataclass
class ChartView:
    """A chart and the table of its numbers (the chart's text alternative)."""

    id: str
    title: str
    head: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    svg: Markup | None = None
    empty: str | None = None


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 100:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _stacked_view(
    chart_id: str, title: str, entry: dict[str, Any], name: str, bucket: str, every: int
) -> ChartView:
    series = entry[name]
    labels = tuple(_bucket_label(start, bucket) for start in entry["starts"])
    stacks = tuple((shown, shown, tuple(values)) for shown, values in series.items())
    view = ChartView(chart_id, title, ("UTC " + bucket, *series.keys(), "total"))
    for i, label in enumerate(labels):
        values = [values[i] for values in series.values()]
        view.rows.append((label, *map(str, values), str(sum(values))))
    view.svg = stacked_bars(Stacked(title, labels, stacks, every=every))
    return view


def _bars_view(
    chart_id: str,
    title: str,
    head: tuple[str, ...],
    empty: str,
    chart: Bars,
    rows: Sequence[tuple[str, ...]],
) -> ChartView:
    view = ChartView(chart_id, title, head, list(rows))
    if chart.rows:
        view.svg = horizontal_bars(chart)
    else:
        view.empty = empty
    return view


def _agents_view(chart_id: str, agents: list[dict[str, Any]]) -> ChartView:
    title = "Failure rate per agent (failed + partial_complete of finished runs)"
    rows, bars = [], []
    for a in agents:
        failures = a["failed"] + a["partial_complete"]
        text = f"{a['failure_rate']:.0%} · {failures} of {a['finished']}"
        bars.append((a["agent"], (a["failure_rate"],), text))
        rows.append(
            (
                a["agent"],
                str(a["finished"]),
                str(a["failed"]),
                str(a["partial_complete"]),
                f"{a['failure_rate']:.0%}",
            )
        )
    chart = Bars(title, (("failure", "failure rate"),), tuple(bars), scale=1.0)
    head = ("agent", "finished", "failed", "partial_complete", "failure rate")
    return _bars_view(chart_id, title, head, "No finished runs.", chart, rows)


def _latency_view(chart_id: str, latency: list[dict[str, Any]]) -> ChartView:
    title = "Delivery latency, accept → sent, per channel (p50, p95; ±9%)"
    rows, bars = [], []
    for c in latency:
        p50, p95 = _seconds(c["p50_seconds"]), _seconds(c["p95_seconds"])
        bars.append((c["channel"], (c["p50_seconds"], c["p95_seconds"]), f"p50 {p50} · p95 {p95}"))
        rows.append((c["channel"], str(c["sent"]), p50, p95))
    chart = Bars(title, (("p50", "p50"), ("p95", "p95")), tuple(bars))
    return _bars_view(
        chart_id, title, ("channel", "sent", "p50", "p95"), "Nothing sent.", chart, rows
    )


def _counts_view(
    chart_id: str, title: str, what: str, key: str, counts: list[tuple[str, int]], empty: str
) -> ChartView:
    bars = tuple((label, (float(n),), str(n)) for label, n in counts)
    chart = Bars(title, ((key, "count"),), bars)
    rows = [(label, str(n)) for label, n in counts]
    return _bars_view(chart_id, title, (what, "count"), empty, chart, rows)


def page_context(data: dict[str, Any]) -> dict[str, Any]:
    """The overview's sections of charts, from ``overview_json``'s answer."""
    periods = []
    for key, heading, bucket, every in PERIODS:
        entry = data["periods"][key]
        charts = []
        if data["store_stats"]:
            per = "hour" if bucket == "hour" else "day (UTC)"
            charts += [
                _stacked_view(
                    f"events-{key}", f"Events per {per}, by flag", entry, "events", bucket, every
                ),
                _stacked_view(
                    f"deliveries-{key}",
                    f"Deliveries per {per}, by outcome",
                    entry,
                    "deliveries",
                    bucket,
                    every,
                ),
                _agents_view(f"agents-{key}", entry["agents"]),
                _latency_view(f"latency-{key}", entry["latency"]),
            ]
        rejected = [(r["reason"], r["count"]) for r in entry["rejected"]]
        charts.append(
            _counts_view(
                f"rejected-{key}",
                "Rejected webhooks by reason (this process)",
                "reason",
                "rejected",
                rejected,
                "No rejected webhooks.",
            )
        )
        periods.append({"id": key, "heading": heading, "charts": charts})
    dead = None
    if data["dead_letters"] is not None:
        counts = [(d["channel"], d["count"]) for d in data["dead_letters"]]
        dead = _counts_view(
            "dead-letters",
            "Dead letters per channel (waiting now)",
            "channel",
            "dead",
            counts,
            "No dead letters.",
        )
    return {"periods": periods, "dead": dead, "now": data["now"]}


async def overview_page(request: web.Request) -> web.Response:
    session = await _session(request)
    state = request.app[UI]
    now = time.time()
    data = overview_json(state, await _stats(state, now), now)
    return await _page(
        request, session, "overview.html", "overview", "Overview", **page_context(data)
    )


async def to_overview(request: web.Request) -> web.Response:
    await _session(request)
    return _redirect("/ui/")


async def stats_api(request: web.Request) -> web.Response:
    """``GET /api/stats``: admin Bearer token or the UI's session, as every ``/api/`` call."""
    state = request.app[UI]
    now = time.time()
    return web.json_response(overview_json(state, await _stats(state, now), now))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui", to_overview)
    app.router.add_get("/ui/", overview_page)
    app.router.add_get("/api/stats", _authed(stats_api))
