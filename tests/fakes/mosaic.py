"""A strict local fake of Mosaic's REST API: ``GET /whoami``, ``/agent/{id}``, ``/agent_run/{id}``,
``/agent_runs`` and ``/agent/{id}/runs``; and acting on runs: ``POST /agent_run/{id}/resume``,
``/agent_run/{id}/cancel`` and ``/agent/{id}/run``.

Agents and runs are seeded by the test (``add_agent``, ``add_run``, ``update_run``); their times
are the test's to set, and default to ``clock()`` (the wall clock unless a test passes one).
Every call is recorded with ``method`` = the route (e.g. ``"GET /agent_run/{run_id}"``), ``path``
= the raw path asked for (``/agent/a%2Fb`` names agent ``a/b``) and ``body`` = the query.
Faults (``fail_next``, ``slow_next``) apply to the next calls, or to the next calls to one route
or path, before the key is checked (like a gateway in front of the API).

Stricter than Mosaic where that catches relay bugs: ``from``/``to`` need a timezone, an unknown
``status`` value is a 400, and the single-run answer has only the documented fields (no
``run_id``, ``updated_at`` or ``triggered_by``); only a failed or partially complete run can be
resumed and only a running one cancelled (else 409: Mosaic's answer is not documented); a start
needs exactly one of ``video_urls`` and ``node_render_ids`` (non-empty lists of strings) and an
optional ``callback_url``, nothing else. A started run is added as ``running``; the answer names
it as ``start_answer`` says (also undocumented). Listings are newest first by ``created_at`` (which
answers do not show), both bounds inclusive, and cursors are keyset cursors, so runs added while
a client pages neither repeat nor shift. Run by hand: ``python -m tests.fakes.mosaic --port 8103``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web

from tests.fakes._server import (
    BodyError,
    Call,
    FakeServer,
    Fault,
    Incoming,
    cli_parser,
    print_call,
    read_params,
    run,
    serve_forever,
)

__all__ = [
    "DEFAULT_KEY",
    "FakeAgent",
    "FakeMosaic",
    "FakeRun",
    "MosaicFault",
    "StartAnswer",
    "iso",
]

DEFAULT_KEY = "mk_test_key_0123456789"
STATUSES = ("running", "completed", "partial_complete", "failed", "cancelled")
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
ORGANIZATION = {
    "organization_id": "org_0fake",
    "organization_name": "Fake Studio",
    "organization_slug": "fake-studio",
}
ROUTES = (
    ("/whoami", re.compile(r"^/whoami$"), "GET"),
    ("/agent_runs", re.compile(r"^/agent_runs$"), "GET"),
    ("/agent_run/{run_id}", re.compile(r"^/agent_run/(?P<run_id>[^/]+)$"), "GET"),
    ("/agent_run/{run_id}/resume", re.compile(r"^/agent_run/(?P<run_id>[^/]+)/resume$"), "POST"),
    ("/agent_run/{run_id}/cancel", re.compile(r"^/agent_run/(?P<run_id>[^/]+)/cancel$"), "POST"),
    ("/agent/{agent_id}/runs", re.compile(r"^/agent/(?P<agent_id>[^/]+)/runs$"), "GET"),
    ("/agent/{agent_id}/run", re.compile(r"^/agent/(?P<agent_id>[^/]+)/run$"), "POST"),
    ("/agent/{agent_id}", re.compile(r"^/agent/(?P<agent_id>[^/]+)$"), "GET"),
)
RESUMABLE = ("failed", "partial_complete")
"""Runs ``resume`` accepts (the fake's error says "failed" for both)."""
START_FIELDS = frozenset({"video_urls", "node_render_ids", "callback_url"})
StartAnswer = Literal["run_id", "id", "empty", "no_body"]
"""How ``POST /agent/{id}/run`` answers: ``{"run_id": …}``, ``{"id": …}``, ``{}``, or 200 with
no body."""
_KEY = re.compile(r"^mk_[A-Za-z0-9_\-]+$")


def iso(moment: datetime) -> str:
    """How the fake writes a time: UTC with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeAgent:
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    visibility: str = "private"

    def as_api(self) -> dict[str, Any]:
        return {
            "agent": {
                "id": self.id,
                "name": self.name,
                "description": self.description,
                "visibility": self.visibility,
                "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at),
            },
            "agent_nodes": [],
            "connections": [],
        }


@dataclass
class FakeRun:
    """A run as the fake stores it; ``created_at`` orders and filters listings."""

    run_id: str
    agent_id: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    status: str = "running"
    status_message: str | None = None
    node_status_counts: dict[str, int] = field(
        default_factory=lambda: {"completed": 0, "in_progress": 1, "failed": 0}
    )
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    triggered_by: dict[str, Any] | None = None
    needs_credits: bool = False
    errors: list[Any] = field(default_factory=list)

    def _common(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "status": self.status,
            "status_message": self.status_message,
            "started_at": iso(self.started_at or self.created_at),
            "node_status_counts": self.node_status_counts,
            "inputs": self.inputs,
            "outputs": self.outputs,
        }

    def as_summary(self) -> dict[str, Any]:
        """An item of ``GET /agent_runs``."""
        return {
            "run_id": self.run_id,
            **self._common(),
            "updated_at": iso(self.updated_at),
            "triggered_by": self.triggered_by,
        }

    def as_run(self) -> dict[str, Any]:
        """``GET /agent_run/{run_id}``: the documented fields only."""
        return {**self._common(), "needs_credits": self.needs_credits, "errors": self.errors}

    def sort_key(self) -> tuple[datetime, str]:
        return (self.created_at, self.run_id)


@dataclass
class MosaicFault(Fault):
    """A queued fault: status 200 answers normally (after the delay, for slow answers).

    ``path`` is None (any call), a route (``"/agent_runs"``, ``"/agent_run/{run_id}"``) or a
    path (``"/agent_run/r1"``). ``retry_after_header`` is sent as ``Retry-After`` verbatim.
    ``hold`` waits for ``release()``; ``delay`` waits that many seconds (or until ``release()``).
    """

    path: str | None = None
    retry_after_header: str | None = None
    delay: float | None = None
    hold: bool = False


class ApiError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class FakeMosaic(FakeServer):
    """Fake Mosaic. ``keys`` are accepted; ``forbidden_keys`` are valid but get 403 everywhere.

    ``clock`` gives the default times of seeded agents and runs and ``last_used_at``.
    ``start_answer`` says how a started run is named in the answer (``StartAnswer``).
    """

    def __init__(
        self,
        *,
        keys: Collection[str] = (DEFAULT_KEY,),
        forbidden_keys: Collection[str] = (),
        clock: Callable[[], datetime] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_call: Callable[[Call], None] | None = None,
    ) -> None:
        super().__init__(host=host, port=port, on_call=on_call)
        self.keys = set(keys)
        self.forbidden_keys = set(forbidden_keys)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.agents: dict[str, FakeAgent] = {}
        self.runs: dict[str, FakeRun] = {}
        self.start_answer: StartAnswer = "run_id"
        self.holding = 0
        """Slow answers waiting right now (their calls are recorded when they answer)."""
        self._release = asyncio.Event()

    # -- seeding -------------------------------------------------------------------------------

    def add_agent(
        self, agent_id: str | None = None, name: str = "Shorts cutter", **changes: Any
    ) -> FakeAgent:
        """Add (or replace) an agent; ``changes`` sets other ``FakeAgent`` fields."""
        now = self.clock()
        agent = FakeAgent(
            id=agent_id or str(uuid.uuid4()), name=name, created_at=now, updated_at=now
        )
        agent = replace(agent, **changes)
        self.agents[agent.id] = agent
        return agent

    def add_run(
        self,
        run_id: str | None = None,
        *,
        agent_id: str | None = None,
        created_at: datetime | None = None,
        **changes: Any,
    ) -> FakeRun:
        """Add (or replace) a run; its agent is added when unknown (or made up when not named).

        ``updated_at`` defaults to ``created_at``, which defaults to ``clock()``.
        """
        if agent_id is None or agent_id not in self.agents:
            agent_id = self.add_agent(agent_id).id
        created = _aware(created_at or self.clock())
        changes.setdefault("updated_at", created)
        record = FakeRun(
            run_id=run_id or str(uuid.uuid4()),
            agent_id=agent_id,
            created_at=created,
            updated_at=created,
        )
        record = replace(record, **changes)
        self.runs[record.run_id] = record
        return record

    def update_run(self, run_id: str, **changes: Any) -> FakeRun:
        """Change a run's fields; ``updated_at`` defaults to ``clock()``. Unknown fields raise."""
        changes.setdefault("updated_at", self.clock())
        record = replace(self.runs[run_id], **changes)
        self.runs[run_id] = record
        return record

    def remove_agent(self, agent_id: str) -> None:
        """Forget an agent (its runs stay): ``GET /agent/{id}`` answers 404."""
        del self.agents[agent_id]

    # -- faults --------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        retry_after: int | str | None = None,
        path: str | None = None,
        error: str | None = None,
    ) -> None:
        """Answer the next ``n`` calls (to ``path``) with ``status`` and ``{"error": ...}``.

        ``retry_after`` is sent as ``Retry-After``: seconds, or any text (an HTTP-date).
        """
        header = None if retry_after is None else str(retry_after)
        self._queue_fault(MosaicFault(n, status, path=path, retry_after_header=header, error=error))

    def slow_next(self, n: int = 1, *, delay: float | None = None, path: str | None = None) -> None:
        """Answer the next ``n`` calls (to ``path``) late: after ``delay`` seconds, or, without a
        delay, when ``release()`` is called (``holding`` counts the calls waiting)."""
        self._queue_fault(MosaicFault(n, 200, path=path, delay=delay, hold=delay is None))

    def release(self) -> None:
        """Let every slow answer go now (later ones wait again)."""
        self._release.set()
        self._release = asyncio.Event()

    async def stop(self) -> None:
        self.clear_faults()
        self.release()
        await super().stop()

    def _take_fault(self, method: str) -> Fault | None:
        """None: faults are taken in ``_handle``, where the path is known."""
        return None

    def _take_plan(self, incoming: Incoming) -> MosaicFault | None:
        route = incoming.method.partition(" ")[2]
        for fault in self.faults:
            if not isinstance(fault, MosaicFault) or fault.path not in (None, route, incoming.path):
                continue
            fault.remaining -= 1
            if fault.remaining == 0:
                self.faults.remove(fault)
            return fault
        return None

    def _fault_response(self, fault: Fault, incoming: Incoming) -> web.Response:
        header = fault.retry_after_header if isinstance(fault, MosaicFault) else None
        headers = {"Retry-After": header} if header is not None else {}
        error = fault.error or HTTPStatus(fault.status).phrase.lower()
        return web.json_response({"error": error}, status=fault.status, headers=headers)

    async def _wait_slow(self, fault: MosaicFault) -> None:
        release = self._release
        self.holding += 1
        await self._notify()
        try:
            async with asyncio.timeout(None if fault.hold else fault.delay):
                await release.wait()
        except TimeoutError:
            pass
        finally:
            self.holding -= 1
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- requests ------------------------------------------------------------------------------

    async def _parse(self, request: web.Request) -> Incoming:
        raw_path = request.rel_url.raw_path
        route = next((name for name, pattern, _ in ROUTES if pattern.match(raw_path)), None)
        method = f"{request.method} {route or raw_path}"
        try:
            query = await read_params(request)
        except BodyError as exc:
            return Incoming(method, raw_path, {}, exc.code)
        return Incoming(method, raw_path, query)

    async def _handle(self, incoming: Incoming, request: web.Request) -> web.StreamResponse:
        fault = self._take_plan(incoming)
        if fault is not None and (fault.hold or fault.delay is not None):
            await self._wait_slow(fault)
        if fault is not None and fault.status != 200:
            return self._fault_response(fault, incoming)
        try:
            self._check_key(request.headers.get("Authorization"))
            answer = self._answer(request, incoming)
        except ApiError as exc:
            return web.json_response({"error": exc.error}, status=exc.status)
        return web.Response() if answer is None else web.json_response(answer)

    def _check_key(self, header: str | None) -> None:
        if not header:
            raise ApiError(401, "missing API key: send Authorization: Bearer mk_...")
        scheme, _, key = header.partition(" ")
        if scheme != "Bearer" or not _KEY.match(key):
            raise ApiError(401, "malformed API key: send Authorization: Bearer mk_...")
        if key in self.forbidden_keys:
            raise ApiError(403, "this API key has no access")
        if key not in self.keys:
            raise ApiError(401, "invalid API key")

    def _answer(self, request: web.Request, incoming: Incoming) -> dict[str, Any] | None:
        for name, pattern, method in ROUTES:
            match = pattern.match(request.rel_url.raw_path)
            if match is None:
                continue
            if request.method != method:
                raise ApiError(405, f"{request.method} is not allowed on {name}")
            ids = {key: unquote(value) for key, value in match.groupdict().items()}
            if method == "POST":
                if incoming.error is not None or request.query:
                    raise ApiError(400, "send a JSON object body and no query")
                return self._act(name, ids, incoming.body)
            return self._route(name, ids, dict(request.query))
        raise ApiError(404, "not found")

    def _act(self, name: str, ids: dict[str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        if name == "/agent/{agent_id}/run":
            return self._start(self._agent(ids["agent_id"]), body)
        if body:
            raise ApiError(400, f"unknown field {sorted(body)[0]!r}")
        found = self.runs.get(ids["run_id"])
        if found is None:
            raise ApiError(404, "run not found")
        if name.endswith("/resume"):
            if found.status not in RESUMABLE:
                raise ApiError(409, f"run is {found.status}: only failed runs can be resumed")
            self.update_run(found.run_id, status="running", status_message=None)
        else:
            if found.status != "running":
                raise ApiError(409, f"run is {found.status}: only running runs can be cancelled")
            self.update_run(found.run_id, status="cancelled")
        return {}

    def _start(self, agent: FakeAgent, body: dict[str, Any]) -> dict[str, Any] | None:
        unknown = sorted(set(body) - START_FIELDS)
        if unknown:
            raise ApiError(400, f"unknown field {unknown[0]!r}")
        given = [name for name in ("video_urls", "node_render_ids") if name in body]
        if len(given) != 1:
            raise ApiError(400, "send exactly one of video_urls and node_render_ids")
        items = body[given[0]]
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(item, str) and item for item in items)
        ):
            raise ApiError(400, f"{given[0]} must be a non-empty list of strings")
        callback = body.get("callback_url")
        if callback is not None and not (
            isinstance(callback, str) and callback.startswith(("http://", "https://"))
        ):
            raise ApiError(400, "callback_url must be an http(s) URL")
        inputs = [{"video_url": url} for url in items] if given[0] == "video_urls" else []
        run = self.add_run(agent_id=agent.id, inputs=inputs)
        if self.start_answer == "no_body":
            return None
        if self.start_answer == "empty":
            return {}
        return {self.start_answer: run.run_id}

    def _route(self, name: str, ids: dict[str, str], query: dict[str, str]) -> dict[str, Any]:
        if name == "/whoami":
            return {**ORGANIZATION, "created_at": "2024-06-01T00:00:00Z",
                    "last_used_at": iso(self.clock())}  # fmt: skip
        if name == "/agent/{agent_id}":
            return self._agent(ids["agent_id"]).as_api()
        if name == "/agent_run/{run_id}":
            found = self.runs.get(ids["run_id"])
            if found is None:
                raise ApiError(404, "run not found")
            return found.as_run()
        if name == "/agent/{agent_id}/runs":
            query["agent_id"] = self._agent(ids["agent_id"]).id
        return self._list(query)

    def _agent(self, agent_id: str) -> FakeAgent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, "agent not found")
        return agent

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        limit = _limit(query.get("limit"))
        after = _decode_cursor(query["cursor"]) if "cursor" in query else None
        statuses = _statuses(query.get("status"))
        start, end = _time(query, "from"), _time(query, "to")
        agent_id = query.get("agent_id")
        matching = [
            r
            for r in sorted(self.runs.values(), key=FakeRun.sort_key, reverse=True)
            if (after is None or r.sort_key() < after)
            and (statuses is None or r.status in statuses)
            and (start is None or r.created_at >= start)
            and (end is None or r.created_at <= end)
            and (agent_id is None or r.agent_id == agent_id)
        ]
        page = matching[:limit]
        more = len(matching) > limit
        return {
            "runs": [r.as_summary() for r in page],
            "next_cursor": _encode_cursor(page[-1].sort_key()) if more else None,
        }


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("give the fake timezone-aware times")
    return moment


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"\d{1,4}", raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _statuses(raw: str | None) -> set[str] | None:
    if raw is None:
        return None
    wanted = {part.strip() for part in raw.split(",")}
    unknown = wanted - set(STATUSES)
    if unknown:
        raise ApiError(400, f"unknown status {sorted(unknown)[0]!r}; known: {', '.join(STATUSES)}")
    return wanted


def _time(query: dict[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{name} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ApiError(400, f"{name} needs a timezone (e.g. 2025-01-10T14:30:00Z)")
    return moment


def _encode_cursor(key: tuple[datetime, str]) -> str:
    raw = json.dumps({"v": 1, "t": key[0].isoformat(), "r": key[1]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if data.get("v") != 1 or not isinstance(data.get("r"), str):
            raise ValueError("not ours")
        return datetime.fromisoformat(data["t"]), data["r"]
    except (binascii.Error, ValueError, TypeError, AttributeError, KeyError):
        raise ApiError(400, "invalid cursor") from None


def _seed(mosaic: FakeMosaic) -> None:
    """An agent and three runs, so the fake has something to list when run by hand."""
    agent = mosaic.add_agent("123e4567-e89b-12d3-a456-789012345678", "Shorts cutter")
    now = mosaic.clock()
    done = {"completed": 3, "in_progress": 0, "failed": 0}
    mosaic.add_run(agent_id=agent.id, created_at=now - timedelta(hours=2), status="completed",
                   node_status_counts=done)  # fmt: skip
    mosaic.add_run(agent_id=agent.id, created_at=now - timedelta(hours=1), status="failed",
                   status_message="Render node failed")  # fmt: skip
    mosaic.add_run(agent_id=agent.id, created_at=now - timedelta(minutes=5))


async def _main() -> None:
    parser = cli_parser("Fake Mosaic REST API")
    parser.add_argument("--key", action="append", help=f"valid API key (default {DEFAULT_KEY})")
    parser.add_argument("--empty", action="store_true", help="start with no agents or runs")
    args = parser.parse_args()
    mosaic = FakeMosaic(
        keys=args.key or (DEFAULT_KEY,), host=args.host, port=args.port, on_call=print_call
    )
    if not args.empty:
        _seed(mosaic)

    def describe() -> list[str]:
        return [
            f"fake mosaic listening on {mosaic.url}",
            f"keys: {', '.join(sorted(mosaic.keys))}",
            f"agents: {len(mosaic.agents)}, runs: {len(mosaic.runs)}",
        ]

    await serve_forever(mosaic, describe)


if __name__ == "__main__":
    run(_main)
