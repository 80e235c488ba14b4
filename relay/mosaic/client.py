"""An asyncio client of Mosaic's REST API: ``whoami``, agents and runs, and acting on runs
(``resume_run``, ``cancel_run``, ``start_run``).

One ``aiohttp.ClientSession`` (the caller's, or one the client opens and closes). Each HTTP
request has its own timeout. 429, 5xx, timeouts and connection errors are retried (see
``RetryPolicy``); 401/403 raise ``MosaicAuthError``; 404 reads as None for a single item and
raises ``MosaicNotFoundError`` when acting. ``start_run`` is not sent again when the try may
have reached Mosaic (a timeout, a dropped connection, a 500): a second run would render again.
The API key travels only in the ``Authorization`` header: exception texts are scrubbed of it,
the repr masks it, and it is registered with the log filter of ``relay.channels.scrub``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, SecretStr, ValidationError
from yarl import URL

from relay.channels.scrub import hide_in_logs, scrub
from relay.events import describe_error
from relay.mosaic.models import Agent, Run, RunPage, RunSummary, WhoAmI

__all__ = [
    "DEFAULT_BASE_URL",
    "LOGGER_NAME",
    "MosaicAuthError",
    "MosaicClient",
    "MosaicError",
    "MosaicNotFoundError",
    "MosaicResponseError",
    "MosaicUnavailableError",
    "RetryPolicy",
    "backoff_delay",
    "retry_after_seconds",
]

DEFAULT_BASE_URL = "https://api.mosaic.so"
LOGGER_NAME = "relay.mosaic"
"""The client's logger; the secret filter of ``relay.channels.scrub`` covers this exact name."""
MAX_BODY = 32 * 1024 * 1024
"""The largest answer read; a longer one is a ``MosaicResponseError``."""
MAX_PAGE_SIZE = 100
_DETAIL_CHARS = 200
_MAX_RUN_ID = 200
_MAYBE_DONE = frozenset({500})
"""Statuses after which a request may have taken effect (not resent when that costs money)."""

log = logging.getLogger(LOGGER_NAME)
_Model = TypeVar("_Model", bound=BaseModel)


class MosaicError(Exception):
    """A call to Mosaic failed. The text never contains the API key."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class MosaicAuthError(MosaicError):
    """HTTP 401/403: the key is missing, wrong, revoked or lacks access (a configuration error)."""


class MosaicUnavailableError(MosaicError):
    """Retries ran out on 429, 5xx, timeouts or connection errors.

    ``status`` is the last HTTP status (None after a timeout or connection error), ``attempts``
    the tries made, ``retry_after`` the seconds Mosaic last asked to wait, when it said.
    """

    def __init__(
        self, reason: str, *, status: int | None, attempts: int, retry_after: float | None
    ) -> None:
        super().__init__(reason, status=status)
        self.attempts = attempts
        self.retry_after = retry_after


class MosaicResponseError(MosaicError):
    """An answer retrying cannot fix: an unexpected status (400, a 404 on a listing, a redirect),
    a body that is not the documented shape, or a listing whose cursors loop."""


class MosaicNotFoundError(MosaicResponseError):
    """HTTP 404 to an action: Mosaic has no such run (resume, cancel) or agent (start)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How one API call is retried.

    At most ``attempts`` tries; between tries the answer's ``Retry-After`` (seconds or an
    HTTP-date) when it has one, else exponential backoff with equal jitter from ``initial``
    seconds, doubling up to ``maximum``. A wait that would end more than ``budget`` seconds after
    the first try is not waited: the call gives up at once.
    """

    attempts: int = 5
    initial: float = 1.0
    maximum: float = 30.0
    budget: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.budget < 0:
            raise ValueError("budget must not be negative")


DEFAULT_RETRY = RetryPolicy()


def backoff_delay(attempt: int, policy: RetryPolicy, rng: Callable[[], float]) -> float:
    """The wait after failed try ``attempt`` (1-based): half to all of ``initial * 2**(n-1)``."""
    base = min(policy.maximum, policy.initial * 2.0 ** max(0, attempt - 1))
    return base / 2 + rng() * base / 2


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """The seconds a ``Retry-After`` value asks for: delta-seconds, or an HTTP-date measured from
    ``now`` (Unix time; a past date is 0). None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    retry_after: str | None


class _Retryable(Exception):
    """``maybe_done``: the request may have reached Mosaic and taken effect."""

    def __init__(
        self, reason: str, *, status: int | None, retry_after: float | None, maybe_done: bool
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.maybe_done = maybe_done


class MosaicClient:
    """Mosaic's REST API. Use ``async with`` (or ``close()``) when the client owns its session.

    ``sleep``, ``clock`` (monotonic seconds, for the retry budget), ``wall_clock`` (Unix time, for
    ``Retry-After`` dates) and ``rng`` (0..1, for jitter) are injectable for tests.
    """

    def __init__(
        self,
        api_key: str | SecretStr,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not self._key.get_secret_value().strip():
            raise ValueError("the Mosaic API key is empty")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        hide_in_logs(self._key.get_secret_value())
        self._base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng
        self._calls = 0

    def __repr__(self) -> str:
        return f"MosaicClient(base_url={self._base_url!r}, api_key={self._key!r})"

    @property
    def api_calls(self) -> int:
        """HTTP requests sent so far, every retry included (what Mosaic's rate limit counts)."""
        return self._calls

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if the client opened it (a caller's session stays open)."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def whoami(self) -> WhoAmI:
        """The organization the key belongs to: a cheap way to check a key."""
        body = await self._get_required("/whoami")
        return _parse(WhoAmI, body, "GET /whoami")

    async def agent(self, agent_id: str) -> Agent | None:
        """The agent (its ``name`` is the display name), or None when Mosaic has no such agent."""
        segment = _segment(agent_id)
        if segment is None:
            return None
        body = await self._get(f"/agent/{segment}")
        if body is None:
            return None
        agent = body.get("agent")
        if not isinstance(agent, dict):
            raise MosaicResponseError("Mosaic's agent answer has no 'agent' object")
        return _parse(Agent, agent, "GET /agent/{agent_id}")

    async def run(self, run_id: str) -> Run | None:
        """The run, with ``needs_credits`` and ``errors``, or None when Mosaic has no such run."""
        segment = _segment(run_id)
        if segment is None:
            return None
        body = await self._get(f"/agent_run/{segment}")
        if body is None:
            return None
        return _parse(Run, {**body, "run_id": run_id}, "GET /agent_run/{run_id}")

    async def runs(
        self,
        *,
        created_from: datetime,
        created_to: datetime | None = None,
        status: str | Iterable[str] | None = None,
        agent_id: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[RunSummary]:
        """Every run created in ``[created_from, created_to]``, newest first, over all pages.

        ``status`` is one status, a comma-separated list or an iterable of them. Raises
        ``MosaicResponseError`` when a ``next_cursor`` comes back a second time (a loop).
        """
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await self.runs_page(
                created_from=created_from,
                created_to=created_to,
                status=status,
                agent_id=agent_id,
                page_size=page_size,
                cursor=cursor,
            )
            for run in page.runs:
                yield run
            if page.next_cursor is None:
                return
            if page.next_cursor in seen:
                raise MosaicResponseError("Mosaic's run listing returned a cursor twice (a loop)")
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    async def runs_page(
        self,
        *,
        created_from: datetime,
        created_to: datetime | None = None,
        status: str | Iterable[str] | None = None,
        agent_id: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of ``GET /agent_runs`` (``runs`` follows the cursors for you)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be from 1 to {MAX_PAGE_SIZE}")
        query = {"limit": str(page_size), "from": _iso(created_from, "created_from")}
        if created_to is not None:
            query["to"] = _iso(created_to, "created_to")
        statuses = _statuses(status)
        if statuses:
            query["status"] = statuses
        if agent_id is not None:
            query["agent_id"] = agent_id
        if cursor is not None:
            query["cursor"] = cursor
        return _run_page(await self._get_required("/agent_runs", query))

    async def resume_run(self, run_id: str) -> None:
        """Retry the failed or blocked nodes of a run (``POST /agent_run/{run_id}/resume``)."""
        await self._act("run", run_id, "/agent_run/{}/resume")

    async def cancel_run(self, run_id: str) -> None:
        """Abort a running run (``POST /agent_run/{run_id}/cancel``)."""
        await self._act("run", run_id, "/agent_run/{}/cancel")

    async def start_run(
        self,
        agent_id: str,
        *,
        video_urls: Sequence[str] | None = None,
        node_render_ids: Sequence[str] | None = None,
        callback_url: str | None = None,
    ) -> str | None:
        """Start a run of the agent on videos or on earlier outputs (``POST /agent/{agent_id}/run``,
        exactly one of ``video_urls`` and ``node_render_ids``). Returns the new run's id when
        Mosaic's answer names one (``run_id`` or ``id``; the answer is not documented).

        Sent again only when the try cannot have started a run (429, a 5xx other than 500, no
        connection made)."""
        if isinstance(video_urls, str) or isinstance(node_render_ids, str):
            raise TypeError("video_urls and node_render_ids are lists of strings")
        if bool(video_urls) == bool(node_render_ids):
            raise ValueError("start_run needs video_urls or node_render_ids (one of them)")
        payload: dict[str, Any] = (
            {"video_urls": list(video_urls)}
            if video_urls
            else {"node_render_ids": list(node_render_ids or ())}
        )
        if callback_url is not None:
            payload["callback_url"] = callback_url
        body = await self._act("agent", agent_id, "/agent/{}/run", payload, resend=False)
        return _new_run_id(body)

    async def _act(
        self,
        kind: str,
        item_id: str,
        template: str,
        payload: dict[str, Any] | None = None,
        *,
        resend: bool = True,
    ) -> bytes:
        """``POST`` to ``template`` with the id in it; the answer's body (any 2xx)."""
        what = "POST " + template.format("{" + kind + "_id}")
        segment = _segment(item_id)
        answer = None
        if segment is not None:
            answer = await self._request(
                "POST", template.format(segment), what, payload=payload, resend=resend
            )
        if answer is None:
            raise MosaicNotFoundError(
                f"Mosaic has no such {kind} (an id that names nothing)", status=404
            )
        if answer.status == 404:
            reason = f"Mosaic has no such {kind} (HTTP 404 to {what}{self._detail(answer.body)})"
            raise MosaicNotFoundError(reason, status=404)
        return answer.body

    async def _get_required(
        self, path: str, query: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        body = await self._get(path, query)
        if body is None:
            raise MosaicResponseError(f"Mosaic answered HTTP 404 to GET {path}", status=404)
        return body

    async def _get(
        self, path: str, query: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """The JSON object answered to ``GET path``, None on 404; retries per the policy."""
        what = f"GET {path}"
        answer = await self._request("GET", path, what, query=query)
        return None if answer.status == 404 else self._json_object(answer.body, what)

    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: Mapping[str, str] | None = None,
        payload: dict[str, Any] | None = None,
        resend: bool = True,
    ) -> _Answer:
        """A 2xx or 404 answer; retries per the policy (with ``resend=False``, only tries that
        cannot have taken effect)."""
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(method, path, what, query, payload)
            except _Retryable as failure:
                wait = self._wait_before_retry(failure, attempt, started)
                if wait is None or (failure.maybe_done and not resend):
                    raise self._gave_up(what, failure, attempt, started, resend) from None
                log.debug(
                    "Mosaic API %s failed (%s); try %d of %d in %.2fs",
                    what,
                    failure.reason,
                    attempt + 1,
                    self._retry.attempts,
                    wait,
                )
                await self._sleep(wait)

    def _wait_before_retry(self, failure: _Retryable, attempt: int, started: float) -> float | None:
        """Seconds to wait before the next try, or None when the policy says give up."""
        if attempt >= self._retry.attempts:
            return None
        wait = failure.retry_after
        if wait is None:
            wait = backoff_delay(attempt, self._retry, self._rng)
        if self._clock() - started + wait > self._retry.budget:
            return None
        return wait

    def _gave_up(
        self, what: str, failure: _Retryable, attempts: int, started: float, resend: bool = True
    ) -> MosaicUnavailableError:
        spent = self._clock() - started
        reason = f"Mosaic API {what}: gave up after {attempts} tries in {spent:.1f}s"
        reason += f" (last: {failure.reason}"
        if failure.retry_after is not None:
            reason += f", Retry-After {failure.retry_after:g}s"
        reason += ")"
        if failure.maybe_done and not resend:
            reason += "; it may have taken effect: check in Mosaic before trying again"
        return MosaicUnavailableError(
            self._scrub(reason),
            status=failure.status,
            attempts=attempts,
            retry_after=failure.retry_after,
        )

    async def _attempt(
        self,
        method: str,
        path: str,
        what: str,
        query: Mapping[str, str] | None,
        payload: dict[str, Any] | None,
    ) -> _Answer:
        answer = await self._send(method, path, query, payload)
        status = answer.status
        if 200 <= status < 300 or status == 404:
            return answer
        detail = self._detail(answer.body)
        if status in (401, 403):
            raise MosaicAuthError(
                f"Mosaic refused the API key: HTTP {status} to {what}{detail}", status=status
            )
        if status == 429 or status >= 500:
            retry_after = retry_after_seconds(answer.retry_after, self._wall_clock())
            maybe_done = status in _MAYBE_DONE
            raise _Retryable(
                f"HTTP {status}", status=status, retry_after=retry_after, maybe_done=maybe_done
            )
        raise MosaicResponseError(f"Mosaic answered HTTP {status} to {what}{detail}", status=status)

    async def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        payload: dict[str, Any] | None,
    ) -> _Answer:
        """One HTTP request; timeouts and connection errors become ``_Retryable``."""
        self._calls += 1
        url = URL(f"{self._base_url}{path}", encoded=True)
        headers = {
            "Authorization": f"Bearer {self._key.get_secret_value()}",
            "Accept": "application/json",
        }
        maybe_done = True
        try:
            async with self._http().request(
                method,
                url,
                params=query,
                json=payload,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                body = await _read_bounded(response)
                return _Answer(response.status, body, response.headers.get("Retry-After"))
        except TimeoutError:
            reason = f"no answer within {self._timeout.total:g}s"
        except aiohttp.ClientConnectorError as exc:
            reason = f"cannot reach Mosaic ({type(exc).__name__})"
            maybe_done = False
        except aiohttp.ClientError as exc:
            reason = f"cannot reach Mosaic ({type(exc).__name__})"
        raise _Retryable(reason, status=None, retry_after=None, maybe_done=maybe_done)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _json_object(self, body: bytes, what: str) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except ValueError:
            raise MosaicResponseError(f"Mosaic's answer to {what} is not JSON") from None
        if not isinstance(data, dict):
            raise MosaicResponseError(f"Mosaic's answer to {what} is not a JSON object")
        return data

    def _detail(self, body: bytes) -> str:
        """``": <error text>"`` from an error body (scrubbed, one line, short), or ``""``."""
        text = body.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            found = next((data[k] for k in ("error", "message", "detail") if k in data), None)
            text = found if isinstance(found, str) else ""
        line = " ".join(self._scrub(text).split())[:_DETAIL_CHARS]
        return f": {line}" if line else ""

    def _scrub(self, text: str) -> str:
        return scrub(text, [self._key.get_secret_value()])


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise MosaicResponseError(f"Mosaic's answer is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _new_run_id(body: bytes) -> str | None:
    """The id in an answer to ``POST /agent/{agent_id}/run``: ``run_id`` or ``id``, if any."""
    try:
        data = json.loads(body) if body.strip() else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for key in ("run_id", "id"):
        value = data.get(key)
        if isinstance(value, str) and 0 < len(value) <= _MAX_RUN_ID and value.isprintable():
            return value
    return None


def _segment(item_id: str) -> str | None:
    """``item_id`` as one URL path segment; None for ids that cannot name anything."""
    if item_id in ("", ".", ".."):
        return None
    return quote(item_id, safe="")


def _iso(value: datetime, name: str) -> str:
    if value.tzinfo is None:
        raise ValueError(f"{name} needs a timezone")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _statuses(status: str | Iterable[str] | None) -> str:
    if status is None:
        return ""
    parts = status.split(",") if isinstance(status, str) else list(status)
    return ",".join(part.strip() for part in parts if part.strip())


def _parse(model: type[_Model], data: Any, what: str) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MosaicResponseError(f"Mosaic's answer to {what}: {describe_error(exc)}") from None


def _run_page(body: dict[str, Any]) -> RunPage:
    items = body.get("runs")
    cursor = body.get("next_cursor")
    if not isinstance(items, list):
        raise MosaicResponseError("Mosaic's run listing has no 'runs' list")
    if cursor is not None and not isinstance(cursor, str):
        raise MosaicResponseError("Mosaic's run listing has a 'next_cursor' that is not a string")
    runs: list[RunSummary] = []
    for item in items:
        try:
            runs.append(RunSummary.model_validate(item))
        except ValidationError as exc:
            log.warning("Mosaic listed a run this relay cannot read: %s", describe_error(exc))
    return RunPage(runs=runs, next_cursor=cursor or None, skipped=len(items) - len(runs))
