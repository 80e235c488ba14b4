"""The webhook handler: size -> signature -> JSON -> model -> route -> durable store -> answer."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from aiohttp import StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from pydantic import ValidationError

from relay.encoding import (
    BadEncoding,
    TooLarge,
    UnsupportedEncoding,
    check_supported,
    decode_body,
)
from relay.events import RELAY_KEY, Event
from relay.ingest import Ingest, canonical_json, new_event_id
from relay.metrics import Metrics, flag_label
from relay.rejections import RejectionLog
from relay.render.limits import oneline
from relay.store.base import Store

if TYPE_CHECKING:
    from relay.config import ServerSettings
    from relay.routing import Router

__all__ = [
    "BadPayload",
    "Ingress",
    "Receiver",
    "canonical_json",
    "decode_event",
    "new_event_id",
    "parse_json",
]

log = logging.getLogger("relay.receiver")

SIGNATURE_HEADER = "X-Mosaic-Signature"
MAX_DEPTH = 32
MAX_INT_DIGITS = 30
RETRY_AFTER_SECONDS = "1"
INLINE_PARSE_BYTES = 65_536
"""Bodies up to this are parsed on the event loop (fast); larger ones in a worker thread."""
FLAG_KEY = web.ResponseKey("relay_flag", str)
RESULT_KEY = web.ResponseKey("relay_result", str)
REASON_KEY = web.ResponseKey("relay_rejected_because", str)
SEEN_KEY = web.ResponseKey("relay_rejected_event", tuple)
_RESULT_BY_STATUS = {
    202: "accepted",
    401: "unauthorized",
    400: "invalid",
    408: "invalid",
    422: "invalid",
    413: "too_large",
    415: "invalid",
    503: "overloaded",
}


class BadPayload(ValueError):
    """The body is not acceptable JSON (400)."""


def _reject_constant(name: str) -> Any:
    raise BadPayload(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys repeat is refused: the relay and an auditor could read other events."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        repeated = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise BadPayload(f"key {oneline(repeated)[:40]!r} appears twice in one JSON object")
    return obj


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadPayload("number too large")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadPayload("number too large")
    return value


class _Decoder(threading.local):
    """The strict JSON decoder, built once per thread (big bodies are parsed in worker threads);
    ``floats``: whether the last text it decoded had a float in it."""

    def __init__(self) -> None:
        self.floats = False
        self.decode = json.JSONDecoder(
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            parse_float=self._float,
        ).decode

    def _float(self, text: str) -> float:
        self.floats = True
        return _parse_float(text)


_decoder = _Decoder()


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no repeated keys, bounded nesting and number size."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPayload("body is not valid UTF-8") from None
    # Cheap pre-check (C speed); the exact depth walk only when brackets are many.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        _scan_depth(text)
    _decoder.floats = False
    try:
        if text.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _decoder.decode(text)
    except BadPayload:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadPayload(f"body is not valid JSON: {_short(exc)}") from None
    if b"\\u" in body:
        _reject_lone_surrogates(value)
    return value


def _reject_lone_surrogates(value: Any) -> None:
    """A ``\\uD800``-style escape without its pair decodes to text that is not Unicode."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadPayload("body has a lone UTF-16 surrogate escape in a string") from None


def _scan_depth(text: str) -> None:
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise BadPayload(f"JSON nested deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


async def _read_body(content: StreamReader, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` (the rest is never buffered)."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    return None if len(body) > limit else bytes(body)


def _buffered_body(content: StreamReader, limit: int) -> bytes | None:
    """``_read_body`` for a body received whole already (``content.is_eof()``)."""
    body = content.read_nowait(limit + 1)
    return None if len(body) > limit else body


def error(status: int, message: str, **extra: Any) -> web.Response:
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


def _stored(outcome: str, event_id: str, status: int = 200) -> web.Response:
    """``web.json_response({"status": outcome, "event_id": event_id}, status=status)``, the same
    bytes written without a JSON encoder (the answer to nearly every webhook)."""
    body = f'{{"status": "{outcome}", "event_id": {json.dumps(event_id)}}}'
    return web.Response(
        body=body.encode(), status=status, content_type="application/json", charset="utf-8"
    )


def rejected(status: int, message: str, reason: str, **extra: Any) -> web.Response:
    """An error answer to a webhook, tagged with a short reason for the rejection log."""
    answer = error(status, message, **extra)
    answer[REASON_KEY] = reason
    return answer


def signature_ok(provided: list[str], accepted: tuple[bytes, ...]) -> bool:
    """Exactly one header, equal (constant time, as bytes) to any configured secret."""
    if len(provided) != 1:
        return False
    given = provided[0].encode("utf-8", "surrogateescape")
    matched = False
    for secret in accepted:
        matched |= hmac.compare_digest(given, secret)
    return matched


class NotAnEvent(ValueError):
    """JSON that is not a Mosaic event (422): where and why, and its flag and run id if given."""

    def __init__(self, details: list[dict[str, Any]], seen: tuple[str, str] | None) -> None:
        super().__init__("not a Mosaic event")
        self.details = details
        self.seen = seen


def decode_event(body: bytes) -> tuple[Event, bytes]:
    """The event and its canonical JSON; ``BadPayload`` (400) or ``NotAnEvent`` (422).

    A ``_relay`` key is dropped: it marks events the relay built itself, never a webhook."""
    _decoder.floats = True  # as if, until parse_json has read the body
    payload = parse_json(body)
    floats = _decoder.floats
    if not isinstance(payload, dict):
        raise NotAnEvent([{"loc": [], "msg": "expected a JSON object"}], None)
    payload.pop(RELAY_KEY, None)
    try:
        event = Event.model_validate(payload)
    except ValidationError as exc:
        details = [
            {"loc": list(e["loc"]), "msg": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        flag, run_id = payload.get("flag"), payload.get("run_id")
        seen = None
        if isinstance(flag, str) and isinstance(run_id, str):
            seen = (oneline(flag)[:40], oneline(run_id)[:80])
        raise NotAnEvent(details, seen) from None
    return event, _canonical(payload, floats)


def _canonical(payload: dict[str, Any], floats: bool) -> bytes:
    """``canonical_json(payload)`` for a payload ``parse_json`` read. Without floats, orjson
    writes the very same bytes, faster (it writes some floats otherwise: ``1e-7`` for
    ``1e-07``); what it refuses (integers beyond 64 bits) goes the usual way."""
    if not floats:
        try:
            return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            pass
    return canonical_json(payload)


class Ingress(Protocol):
    """What the webhook handler reads of the config serving now (a ``Runtime`` is one)."""

    @property
    def router(self) -> Router: ...

    @property
    def secrets(self) -> tuple[bytes, ...]: ...

    @property
    def allow_unsigned(self) -> bool: ...

    @property
    def server(self) -> ServerSettings: ...


class Receiver:
    def __init__(
        self,
        store: Store,
        ingress: Callable[[], Ingress],
        on_accepted: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        rejections: RejectionLog | None = None,
    ) -> None:
        self._metrics = metrics
        self._ingress = ingress
        self.ingest = Ingest(store, lambda: ingress().router, on_accepted, clock=clock)
        """The shared way into the store (the reconciler and the stale-run watch use it too)."""
        self._in_flight = 0
        self.rejections = rejections or RejectionLog(clock=clock)
        self.draining = False
        self._counters: dict[tuple[str, str], Any] = {}
        """``metrics.webhooks`` by (flag label, result): looked up once each."""

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        response = await self._admit(request)
        reason = response.get(REASON_KEY)
        if reason is not None:
            flag, run_id = response.get(SEEN_KEY) or (None, None)
            self.rejections.record(
                response.status, reason, request.remote, flag=flag, run_id=run_id
            )
        if self._metrics is not None:
            result = response.get(RESULT_KEY) or _RESULT_BY_STATUS.get(response.status, "invalid")
            labels = (flag_label(response.get(FLAG_KEY)), result)
            counter = self._counters.get(labels)
            if counter is None:
                counter = self._counters[labels] = self._metrics.webhooks.labels(*labels)
            counter.inc()
            self._metrics.webhook_seconds.observe(time.perf_counter() - started)
        return response

    async def _admit(self, request: web.Request) -> web.Response:
        """Checks that need no body come first, so an unsigned client never holds a slot."""
        if self.draining:
            answer = error(503, "shutting down; retry shortly")
            answer.force_close()
            return answer
        ingress = self._ingress()
        server = ingress.server
        limit = server.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return rejected(413, f"body larger than {limit} bytes", "body too large")
        if ingress.secrets or not ingress.allow_unsigned:
            provided = request.headers.getall(SIGNATURE_HEADER, [])
            if not signature_ok(provided, ingress.secrets):
                reason = "repeated" if len(provided) > 1 else ("missing" if not provided else "bad")
                return rejected(401, f"{reason} {SIGNATURE_HEADER} header", f"{reason} signature")
        encoding = request.headers.get("Content-Encoding")
        if encoding is not None:
            try:
                check_supported(encoding)
            except UnsupportedEncoding as exc:
                return rejected(415, str(exc), "unsupported Content-Encoding")
        if self._in_flight >= server.max_in_flight:
            return error(503, "overloaded; retry shortly")
        self._in_flight += 1
        try:
            return await self._handle(request, ingress, encoding)
        finally:
            self._in_flight -= 1

    async def _handle(
        self, request: web.Request, ingress: Ingress, encoding: str | None
    ) -> web.Response:
        server = ingress.server
        limit = server.max_body_bytes
        content = request.content
        try:
            if content.is_eof():  # all there already: nothing to wait for
                body = _buffered_body(content, limit)
            else:
                async with asyncio.timeout(server.read_timeout):
                    body = await _read_body(content, limit)
        except TimeoutError:
            answer = rejected(
                408, f"body not received within {server.read_timeout:g}s", "body too slow"
            )
            answer.force_close()
            return answer
        except (RequestPayloadError, HttpProcessingError, ConnectionError) as exc:
            detail = _short(exc).removeprefix("400, message: ")
            return rejected(400, f"cannot read the body: {detail}", "unreadable body")
        if body is None:
            return rejected(413, f"body larger than {limit} bytes", "body too large")
        if encoding is not None:
            try:
                body = decode_body(body, encoding, limit)
            except TooLarge as exc:
                return rejected(413, str(exc), "body too large")
            except (BadEncoding, UnsupportedEncoding) as exc:
                return rejected(400, f"cannot read the body: {exc}", "unreadable body")

        try:
            if len(body) > INLINE_PARSE_BYTES:  # a big body must not hold the loop
                event, canonical = await asyncio.to_thread(decode_event, body)
            else:
                event, canonical = decode_event(body)
        except BadPayload as exc:
            return rejected(400, str(exc), "invalid JSON")
        except NotAnEvent as exc:
            answer = rejected(422, "not a Mosaic event", "not a Mosaic event", details=exc.details)
            if exc.seen is not None:
                answer[SEEN_KEY] = exc.seen
            return answer

        try:
            result, jobs = await self.ingest.event(event, canonical)
        except Exception:
            log.exception("storing an event failed")
            answer = error(503, "cannot store the event right now; retry shortly")
            answer[FLAG_KEY], answer[RESULT_KEY] = event.flag, "unavailable"
            return answer
        if result.duplicate:
            answer = _stored("duplicate", result.event_id)
            answer[FLAG_KEY], answer[RESULT_KEY] = event.flag, "duplicate"
            return answer
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "accepted %s %s -> %s",
                event.flag,
                event.status,
                ", ".join(j.channel for j in jobs) or "no route",
                extra={"event_id": result.event_id, "run_id": event.run_id},
            )
        if event.flag == "TEST":
            answer = _stored("ok", result.event_id)
            answer[RESULT_KEY] = "ok"
        else:
            answer = _stored("accepted", result.event_id, 202)
        answer[FLAG_KEY] = event.flag
        return answer
