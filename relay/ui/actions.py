"""The chat actions' audit: ``/ui/actions`` and ``/api/actions`` (``relay.actions``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from relay.store.base import ActionRecord
from relay.ui.api import MAX_LIMIT, _authed, int_param
from relay.ui.pages import _page, _session
from relay.ui.state import UI

__all__ = ["action_json", "add_routes"]

PAGE_ACTIONS = 100


def action_json(record: ActionRecord) -> dict[str, Any]:
    return asdict(record)


async def actions_page(request: web.Request) -> web.Response:
    session = await _session(request)
    records = await request.app[UI].store.list_actions(limit=PAGE_ACTIONS)
    return await _page(
        request, session, "actions.html", "actions", "Chat actions",
        actions=[action_json(r) for r in records],
    )  # fmt: skip


async def actions_api(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", PAGE_ACTIONS, low=1, high=MAX_LIMIT) or PAGE_ACTIONS
    run_id = request.query.get("run_id", "").strip() or None
    records = await request.app[UI].store.list_actions(run_id=run_id, limit=limit)
    return web.json_response({"actions": [action_json(r) for r in records]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ui/actions", actions_page)
    app.router.add_get("/api/actions", _authed(actions_api))
