"""The server-rendered pages under ``/ui``; Jinja2 escapes every value (event text is hostile).

Pages only read. Actions (replay, route test) and the live counts go through ``/api/`` from the
page's script, with the session's CSRF token.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from relay.admin import wrong_token
from relay.dryrun import sample_names
from relay.render.environment import duration
from relay.store.base import DELIVERY_STATES, StoreInspector
from relay.ui.api import event_filter, inspector, int_param
from relay.ui.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    Session,
    csrf_ok,
    current_token,
    token_matches,
)
from relay.ui.present import (
    agent_names,
    config_json,
    counts_json,
    dead_letter_json,
    event_detail_json,
    event_json,
)
from relay.ui.state import UI

__all__ = ["PAGE_SIZE", "STATIC_FILES", "add_page_routes"]

PAGE_SIZE = 50
FLAGS = ("RUN_STARTED", "RUN_PROGRESS", "RUN_FINISHED", "RUN_STALE", "TEST", "DIGEST")
STATUSES = ("running", "completed", "partial_complete", "failed", "cancelled")
STATIC_FILES = {"app.css": "text/css", "app.js": "text/javascript"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(value: float | None) -> str:
    if not value:
        return "–"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(seconds: float | None) -> str:
    return "–" if seconds is None else duration(seconds)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("relay.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["ago"] = _ago
    env.filters["short"] = lambda value: str(value)[:8]
    env.globals["DELIVERY_STATES"] = DELIVERY_STATES
    return env


TEMPLATES = _environment()


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def _safe_next(value: str | None) -> str:
    """Only a path inside the UI: a login must not redirect anywhere else."""
    if (
        value
        and value.startswith("/ui/")
        and value.isprintable()
        and "\\" not in value
        and "//" not in value
    ):
        return value
    return "/ui/events"


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", headers=SECURITY_HEADERS
    )


async def _session(request: web.Request) -> Session:
    """The page's session; 404 when the UI is off, else a redirect to the login form."""
    state = request.app[UI]
    token = current_token(state.live.current)
    session = await state.sessions.get(request.cookies.get(SESSION_COOKIE), token)
    if session is None:
        raise web.HTTPSeeOther(f"/ui/login?{urlencode({'next': request.path_qs})}")
    return session


async def _page(
    request: web.Request, session: Session, template: str, page: str, title: str, **context: Any
) -> web.Response:
    state = request.app[UI]
    text = TEMPLATES.get_template(template).render(
        page=page,
        title=title,
        csrf=session.csrf,
        csrf_field=CSRF_FIELD,
        counts=await counts_json(state.store),
        inspectable=isinstance(state.store, StoreInspector),
        refresh_ms=int(state.refresh_seconds * 1000),
        **context,
    )
    return _html(text)


async def login_form(request: web.Request) -> web.Response:
    state = request.app[UI]
    token = current_token(state.live.current)
    target = _safe_next(request.query.get("next"))
    if await state.sessions.get(request.cookies.get(SESSION_COOKIE), token) is not None:
        return _redirect(target)
    return _login_page(target)


def _login_page(target: str, message: str | None = None, status: int = 200) -> web.Response:
    text = TEMPLATES.get_template("login.html").render(title="Log in", next=target, message=message)
    return _html(text, status)


async def login(request: web.Request) -> web.Response:
    state = request.app[UI]
    token = current_token(state.live.current)
    form = await request.post()
    target = _safe_next(str(form.get("next", "")))
    given = form.get("token")
    if not isinstance(given, str) or not token_matches(given, token):
        wait = math.ceil(wrong_token(request, state.live.current, state.limiter, "UI login"))
        if wait:
            page = _login_page(target, f"Too many wrong tokens; try again in {wait}s.", 429)
            page.headers["Retry-After"] = str(wait)
            return page
        return _login_page(target, "Wrong admin token.", 401)
    session_id, session = await state.sessions.open(token)
    response = _redirect(target)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        max_age=int(session.expires - time.time()),
    )
    return response


async def logout(request: web.Request) -> web.Response:
    session = await _session(request)
    form = await request.post()
    given = form.get(CSRF_FIELD)
    if not csrf_ok(given if isinstance(given, str) else None, session):
        raise web.HTTPForbidden(reason="missing or wrong CSRF token")
    await request.app[UI].sessions.close(request.cookies.get(SESSION_COOKIE))
    response = _redirect("/ui/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def events_page(request: web.Request) -> web.Response:
    session = await _session(request)
    state = request.app[UI]
    runtime = state.live.current
    query = {k: v for k, v in request.query.items() if k != "before" and v.strip()}
    events: list[dict[str, Any]] = []
    older = None
    if isinstance(state.store, StoreInspector):
        before = int_param(request, "before", None, low=0, high=2**62)
        where = event_filter(request, state)
        records = await state.store.list_events(limit=PAGE_SIZE, before=before, where=where)
        events = [event_json(runtime, record) for record in records]
        if len(records) == PAGE_SIZE:
            older = "?" + urlencode({**query, "before": records[-1].cursor})
    return await _page(
        request,
        session,
        "events.html",
        "events",
        "Events",
        events=events,
        filters={
            k: request.query.get(k, "") for k in ("flag", "status", "agent", "run_id", "delivery")
        },
        older=older,
        newest="?" + urlencode(query) if "before" in request.query else None,
        flags=FLAGS,
        statuses=STATUSES,
        agents=agent_names(runtime),
    )


async def event_page(request: web.Request) -> web.Response:
    session = await _session(request)
    state = request.app[UI]
    record = await inspector(state).get_event(request.match_info["event_id"])
    if record is None:
        raise web.HTTPNotFound(reason="no such event")
    detail = event_detail_json(state.live.current, record)
    payload = json.dumps(detail["payload"], indent=2, ensure_ascii=False, sort_keys=True)
    return await _page(
        request, session, "event.html", "events", f"Event {record.event_id[:8]}",
        event=detail, payload=payload,
    )  # fmt: skip


async def dead_letters_page(request: web.Request) -> web.Response:
    session = await _session(request)
    state = request.app[UI]
    limit = int_param(request, "limit", 100, low=1, high=1000) or 100
    jobs = await state.store.dead_letters(limit=limit)
    now = time.time()
    runtime = state.live.current
    letters = [dead_letter_json(runtime, job, now) for job in jobs]
    return await _page(
        request, session, "dead_letters.html", "dead", "Dead letters", letters=letters, limit=limit
    )


async def route_test_page(request: web.Request) -> web.Response:
    session = await _session(request)
    state = request.app[UI]
    prefill = ""
    event_id = request.query.get("event")
    if event_id and isinstance(state.store, StoreInspector):
        record = await state.store.get_event(event_id)
        if record is not None and record.body is not None:
            prefill = json.dumps(json.loads(record.body), indent=2, ensure_ascii=False)
    return await _page(
        request, session, "route_test.html", "route-test", "Route tester",
        samples=sample_names(), prefill=prefill,
    )  # fmt: skip


async def config_page(request: web.Request) -> web.Response:
    session = await _session(request)
    return await _page(
        request, session, "config.html", "config", "Config", config=config_json(request.app[UI])
    )


async def static(request: web.Request) -> web.Response:
    current_token(request.app[UI].live.current)
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    body = (resources.files("relay.ui") / "static" / name).read_bytes()
    return web.Response(
        body=body,
        content_type=STATIC_FILES[name],
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def add_page_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/ui/login", login_form)
    router.add_post("/ui/login", login)
    router.add_post("/ui/logout", logout)
    router.add_get("/ui/events", events_page)
    router.add_get("/ui/events/{event_id}", event_page)
    router.add_get("/ui/dead-letters", dead_letters_page)
    router.add_get("/ui/route-test", route_test_page)
    router.add_get("/ui/config", config_page)
    router.add_get("/ui/static/{name}", static)
