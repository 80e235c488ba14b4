"""The JSON API under ``/api/``: what the UI's pages use, and scripts may too.

Every call takes ``Authorization: Bearer <admin_token>``, or the UI's session cookie (POSTs then
also need the session's CSRF token). Without ``server.admin_token`` every path answers 404.
Event listings need a store that implements ``StoreInspector``; others answer 501.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from relay.dryrun import DryRunError, route_test, sample_bytes, sample_names
from relay.receiver import error
from relay.store.base import DELIVERY_STATES, EventFilter, StoreInspector
from relay.ui.auth import api_session
from relay.ui.present import (
    config_json,
    counts_json,
    dead_letter_json,
    delivery_json,
    event_detail_json,
    event_json,
    resolve_agent,
)
from relay.ui.state import UI, UiState

__all__ = ["MAX_LIMIT", "event_filter", "inspector", "int_param", "setup_api"]

MAX_LIMIT = 200
NOT_AVAILABLE = "not available with this store"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _authed(handler: Handler) -> Handler:
    async def checked(request: web.Request) -> web.StreamResponse:
        state = request.app[UI]
        await api_session(request, state.live.current, state.sessions, state.limiter)
        response = await handler(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return checked


def inspector(state: UiState) -> StoreInspector:
    store = state.store
    if not isinstance(store, StoreInspector):
        raise web.HTTPNotImplemented(reason=NOT_AVAILABLE)
    return store


def int_param(
    request: web.Request, name: str, default: int | None, *, low: int, high: int
) -> int | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{name} must be an integer") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(reason=f"{name} must be between {low} and {high}")
    return value


def event_filter(request: web.Request, state: UiState) -> EventFilter:
    """Filters from the query: ``flag``, ``status``, ``agent`` (id or name), ``run_id``,
    ``delivery`` (sent, pending, retrying, dead); empty values are ignored."""
    query = {key: request.query.get(key, "").strip() or None for key in
             ("flag", "status", "agent", "run_id", "delivery")}  # fmt: skip
    delivery = query["delivery"]
    if delivery is not None and delivery not in DELIVERY_STATES:
        raise web.HTTPBadRequest(reason=f"delivery must be one of: {', '.join(DELIVERY_STATES)}")
    agent = query["agent"]
    return EventFilter(
        flag=query["flag"],
        status=query["status"],
        agent_id=resolve_agent(state.live.current, agent) if agent else None,
        run_id=query["run_id"],
        delivery=delivery,
    )


async def counts(request: web.Request) -> web.Response:
    return web.json_response(await counts_json(request.app[UI].store))


async def list_events(request: web.Request) -> web.Response:
    state = request.app[UI]
    limit = int_param(request, "limit", 50, low=1, high=MAX_LIMIT) or 50
    before = int_param(request, "before", None, low=0, high=2**62)
    where = event_filter(request, state)
    records = await inspector(state).list_events(limit=limit, before=before, where=where)
    runtime = state.live.current
    return web.json_response(
        {
            "events": [event_json(runtime, record) for record in records],
            "next_before": records[-1].cursor if len(records) == limit else None,
        }
    )


async def get_event(request: web.Request) -> web.Response:
    state = request.app[UI]
    event_id = request.match_info["event_id"]
    record = await inspector(state).get_event(event_id)
    if record is None:
        return error(404, "no such event")
    return web.json_response(event_detail_json(state.live.current, record))


async def event_deliveries(request: web.Request) -> web.Response:
    state = request.app[UI]
    record = await inspector(state).get_event(request.match_info["event_id"])
    if record is None:
        return error(404, "no such event")
    return web.json_response(
        {"deliveries": [delivery_json(job, with_log=True) for job in record.jobs]}
    )


async def dead_letters(request: web.Request) -> web.Response:
    state = request.app[UI]
    limit = int_param(request, "limit", 100, low=1, high=1000) or 100
    jobs = await state.store.dead_letters(limit=limit)
    now = time.time()
    runtime = state.live.current
    return web.json_response(
        {"dead_letters": [dead_letter_json(runtime, job, now) for job in jobs]}
    )


async def replay_one(request: web.Request) -> web.Response:
    state = request.app[UI]
    job_id = request.match_info["job_id"]
    replayed = await state.store.replay(job_id, now=time.time())
    if not replayed:
        return error(404, "no dead letter with that id")
    state.notify()
    return web.json_response({"replayed": replayed})


async def replay_all(request: web.Request) -> web.Response:
    state = request.app[UI]
    replayed = await state.store.replay(None, now=time.time())
    if replayed:
        state.notify()
    return web.json_response({"replayed": replayed})


async def run_route_test(request: web.Request) -> web.Response:
    """The body is an event's JSON; the answer is ``relay route-test --json``'s. Sends nothing.

    Parsing and rendering run in a worker thread, so a large event does not stall the server.
    """
    raw = await request.read()
    runtime = request.app[UI].live.current
    try:
        answer = await asyncio.to_thread(lambda: json.dumps(route_test(runtime, raw)))
    except DryRunError as exc:
        return error(400, str(exc))
    return web.Response(text=answer, content_type="application/json")


async def samples(request: web.Request) -> web.Response:
    return web.json_response({"samples": sample_names()})


async def sample(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in sample_names():
        return error(404, "no such sample")
    return web.Response(body=sample_bytes(name), content_type="application/json")


async def config(request: web.Request) -> web.Response:
    return web.json_response(config_json(request.app[UI]))


def setup_api(app: web.Application) -> None:
    """Register the ``/api/`` routes (``app[UI]`` must be set)."""
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/api/counts", counts),
        ("GET", "/api/events", list_events),
        ("GET", "/api/events/{event_id}", get_event),
        ("GET", "/api/events/{event_id}/deliveries", event_deliveries),
        ("GET", "/api/dead-letters", dead_letters),
        ("POST", "/api/dead-letters/replay", replay_all),
        ("POST", "/api/dead-letters/{job_id}/replay", replay_one),
        ("POST", "/api/route-test", run_route_test),
        ("GET", "/api/samples", samples),
        ("GET", "/api/samples/{name}", sample),
        ("GET", "/api/config", config),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _authed(handler))
