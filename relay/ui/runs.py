"""Runs: ``/ui/runs`` (one row per run), ``/ui/runs/{run_id}`` (its timeline) and the same data
as JSON under ``/api/runs``. Same session, CSRF and headers as the other pages (``pages``)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from relay.receiver import error
from relay.runtime import Runtime
from relay.store.base import (
    DELIVERY_STATES,
    ActionRecord,
    RunDetail,
    RunFilter,
    RunRecord,
    StoreInspector,
)
from relay.ui.actions import action_json
from relay.ui.api import MAX_LIMIT, _authed, inspector, int_param
from relay.ui.pages import PAGE_SIZE, SECURITY_HEADERS, STATUSES, _page, _session
from relay.ui.present import agent_name, agent_names, delivery_json, resolve_agent
from relay.ui.state import UI, UiState
from relay.ui.timeline import (
    card_json,
    event_entry,
    outputs_of,
    progress_chart,
    progress_points,
)

__all__ = ["HEALTHS", "add_routes", "run_detail_json", "run_json"]

HEALTHS = (*DELIVERY_STATES, "none")
TRIGGERS = ("youtube", "schedule", "manual", "none")
FILTERS = ("agent", "status", "trigger", "delivery")
MAX_CURSOR = 600
RUN_CSP = SECURITY_HEADERS["Content-Security-Policy"].replace(
    "img-src 'self'", "img-src 'self' https: http:"
)
"""The timeline shows outputs' thumbnails from wherever Mosaic keeps them (only that page)."""
assert SECURITY_HEADERS["Content-Security-Policy"] != RUN_CSP


def run_filter(request: web.Request, state: UiState) -> RunFilter:
    """``agent`` (id or name), ``status`` (final), ``trigger``, ``delivery`` (health)."""
    query = {key: request.query.get(key, "").strip() or None for key in FILTERS}
    delivery = query["delivery"]
    if delivery is not None and delivery not in HEALTHS:
        raise web.HTTPBadRequest(reason=f"delivery must be one of: {', '.join(HEALTHS)}")
    agent = query["agent"]
    return RunFilter(
        agent_id=resolve_agent(state.live.current, agent) if agent else None,
        status=query["status"],
        trigger=query["trigger"],
        delivery=delivery,
    )


def _before(request: web.Request) -> str | None:
    before = request.query.get("before", "").strip() or None
    if before is not None and len(before) > MAX_CURSOR:
        raise web.HTTPBadRequest(reason="before is not a cursor")
    return before


def run_json(runtime: Runtime, run: RunRecord, now: float) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "agent_id": run.agent_id,
        "agent_name": agent_name(runtime, run.agent_id),
        "trigger": run.trigger,
        "title": run.title,
        "started_at": run.started_at,
        "start_seen_at": run.start_seen_at,
        "last_event_at": run.last_event_at,
        "status": run.status,
        "ended": run.ended,
        "ended_at": run.ended_at,
        "duration": run.duration(now),
        "outputs": run.outputs,
        "events": run.events,
        "delivery": run.health,
        "cursor": run.cursor,
    }


def _channel_type(runtime: Runtime, channel: str) -> str | None:
    settings = runtime.loaded.config.channels.get(channel)
    return getattr(settings, "type", None) if settings is not None else None


def run_detail_json(
    runtime: Runtime, detail: RunDetail, now: float, actions: list[ActionRecord] | None = None
) -> dict[str, Any]:
    run = run_json(runtime, detail.record, now)
    entries = [
        event_entry(record, [delivery_json(job, with_log=True) for job in record.jobs])
        for record in detail.events
    ]
    return {
        "run": run,
        "events": entries,
        "events_left_out": detail.events_left_out,
        "progress": progress_points(entries, detail.record.started_at),
        "outputs": outputs_of(detail.events),
        "cards": [card_json(c, _channel_type(runtime, c.channel)) for c in detail.cards],
        "actions": [action_json(record) for record in actions or ()],
    }


async def runs_page(request: web.Request) -> web.Response:
    session = await _session(request)
    state = request.app[UI]
    runtime = state.live.current
    query = {k: v for k, v in request.query.items() if k != "before" and v.strip()}
    runs: list[dict[str, Any]] = []
    older = None
    if isinstance(state.store, StoreInspector):
        page = await state.store.list_runs(
            limit=PAGE_SIZE, before=_before(request), where=run_filter(request, state)
        )
        now = time.time()
        runs = [run_json(runtime, run, now) for run in page.runs]
        if page.older is not None:
            older = "?" + urlencode({**query, "before": page.older})
    return await _page(
        request, session, "runs.html", "runs", "Runs",
        runs=runs, older=older,
        newest="?" + urlencode(query) if "before" in request.query else None,
        filters={key: request.query.get(key, "") for key in FILTERS},
        statuses=STATUSES, triggers=TRIGGERS, healths=HEALTHS, agents=agent_names(runtime),
    )  # fmt: skip


async def run_page(request: web.Request) -> web.Response:
    session = await _session(request)
    state = request.app[UI]
    detail = await inspector(state).get_run(request.match_info["run_id"])
    if detail is None:
        raise web.HTTPNotFound(reason="no such run")
    actions = await state.store.list_actions(run_id=detail.record.run_id)
    data = run_detail_json(state.live.current, detail, time.time(), actions)
    response = await _page(
        request, session, "run.html", "runs", f"Run {detail.record.run_id[:8]}",
        run=data["run"], timeline=data["events"], left_out=data["events_left_out"],
        progress=data["progress"], chart=progress_chart(data["progress"]),
        outputs=data["outputs"], cards=data["cards"], actions=data["actions"],
    )  # fmt: skip
    response.headers["Content-Security-Policy"] = RUN_CSP
    return response


async def api_runs(request: web.Request) -> web.Response:
    state = request.app[UI]
    limit = int_param(request, "limit", 50, low=1, high=MAX_LIMIT) or 50
    page = await inspector(state).list_runs(
        limit=limit, before=_before(request), where=run_filter(request, state)
    )
    now, runtime = time.time(), state.live.current
    return web.json_response(
        {"runs": [run_json(runtime, run, now) for run in page.runs], "next_before": page.older}
    )


async def api_run(request: web.Request) -> web.Response:
    state = request.app[UI]
    detail = await inspector(state).get_run(request.match_info["run_id"])
    if detail is None:
        return error(404, "no such run")
    actions = await state.store.list_actions(run_id=detail.record.run_id)
    return web.json_response(run_detail_json(state.live.current, detail, time.time(), actions))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui/runs", runs_page)
    app.router.add_get("/ui/runs/{run_id}", run_page)
    app.router.add_get("/api/runs", _authed(api_runs))
    app.router.add_get("/api/runs/{run_id}", _authed(api_run))
