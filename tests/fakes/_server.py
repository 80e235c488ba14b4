"""Shared machinery of the fake API servers: lifecycle, call log, waiting, faults, down mode.

A subclass parses a request into an ``Incoming`` (API method name, body, masked path) and
answers it; this base records every call, applies queued faults first, and can drop or refuse
connections to simulate an outage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

__all__ = [
    "REDACTED",
    "BodyError",
    "Call",
    "FakeServer",
    "Fault",
    "Incoming",
    "cli_parser",
    "print_call",
    "read_params",
    "run",
    "serve_forever",
]

REDACTED = "<redacted>"


@dataclass(frozen=True)
class Call:
    """One request as the fake saw it; secrets are masked in ``path`` and ``headers``.

    ``status`` is None when the connection was dropped (down mode).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float
    status: int | None
    response: Any


@dataclass(frozen=True)
class Incoming:
    """A parsed request; ``error`` names a body that could not be parsed."""

    method: str
    path: str
    body: dict[str, Any]
    error: str | None = None


@dataclass
class Fault:
    """A queued failure: the next ``remaining`` calls to ``method`` (None: any) get it.

    ``error`` is the Slack error code or the Telegram description (None: a default).
    """

    remaining: int
    status: int
    method: str | None = None
    retry_after: int | None = None
    error: str | None = None


class FakeServer:
    """An aiohttp server on 127.0.0.1 that records calls; use ``async with``."""

    secret_fields: frozenset[str] = frozenset()

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_call: Callable[[Call], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.down = False
        self._on_call = on_call
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._entry)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await self._listen()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port)
        await self._site.start()
        self.port = self._runner.addresses[-1][1]

    async def go_down(self, *, refuse: bool = False) -> None:
        """Drop every connection without an answer; with ``refuse`` also stop listening."""
        self.down = True
        if refuse and self._site is not None:
            await self._site.stop()
            self._site = None

    async def go_up(self) -> None:
        self.down = False
        if self._site is None and self._runner is not None:
            await self._listen()

    def _queue_fault(self, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("a fault needs n >= 1")
        self.faults.append(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def _take_fault(self, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.method in (None, method):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def calls_for(self, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if method is None or c.method == method]

    async def wait_for(
        self,
        until: int | Callable[[], bool],
        *,
        method: str | None = None,
        timeout: float = 5.0,
    ) -> list[Call]:
        """Wait until ``until`` calls (to ``method``) were recorded, or ``until()`` is true.

        Returns the matching calls; raises TimeoutError after ``timeout`` seconds.
        """
        if callable(until):
            predicate = until
        else:
            count = until

            def predicate() -> bool:
                return len(self.calls_for(method)) >= count

        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(predicate)
            except TimeoutError:
                seen = [f"{c.method}:{c.status}" for c in self.calls]
                raise TimeoutError(
                    f"condition not met within {timeout}s; calls so far: {seen}"
                ) from None
        return self.calls_for(method)

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        received_at = time.time()
        incoming = await self._parse(request)
        response: web.StreamResponse
        if self.down:
            if request.transport is not None:
                request.transport.close()
            response = web.Response(status=503)
            status: int | None = None
        else:
            fault = self._take_fault(incoming.method)
            response = (
                self._fault_response(fault, incoming)
                if fault
                else await self._handle(incoming, request)
            )
            status = response.status
        await self._record(
            Call(
                method=incoming.method,
                path=incoming.path,
                headers=_masked_headers(request),
                body={
                    k: REDACTED if k in self.secret_fields else v for k, v in incoming.body.items()
                },
                received_at=received_at,
                status=status,
                response=_response_payload(response) if status is not None else None,
            )
        )
        return response

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        if self._on_call is not None:
            self._on_call(call)
        async with self._changed:
            self._changed.notify_all()

    async def _parse(self, request: web.Request) -> Incoming:
        raise NotImplementedError

    async def _handle(self, incoming: Incoming, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def _fault_response(self, fault: Fault, incoming: Incoming) -> web.Response:
        raise NotImplementedError


async def read_params(request: web.Request) -> dict[str, Any]:
    """Query string plus a JSON, form or multipart body (files become ``{filename, size}``)."""
    params: dict[str, Any] = dict(request.query)
    if not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise BodyError("invalid_json") from None
        if not isinstance(data, dict):
            raise BodyError("invalid_json")
        params.update(data)
        return params
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                params[key] = {"filename": value.filename, "size": len(value.file.read())}
            else:
                params[key] = value
        return params
    raw = await request.read()
    if raw:
        params["_raw"] = raw.decode("utf-8", "replace")
    return params


class BodyError(Exception):
    """The request body could not be parsed; ``code`` names the problem."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _masked_headers(request: web.Request) -> dict[str, str]:
    return {
        k: (REDACTED if k.lower() == "authorization" else v) for k, v in request.headers.items()
    }


def _response_payload(response: web.StreamResponse) -> Any:
    if not isinstance(response, web.Response) or response.body is None:
        return None
    text = response.text or ""
    if response.content_type == "application/json":
        return json.loads(text)
    return text


def print_call(call: Call) -> None:
    stamp = time.strftime("%H:%M:%S", time.localtime(call.received_at))
    status = "dropped" if call.status is None else str(call.status)
    body = json.dumps(call.body, ensure_ascii=False, default=str)
    if len(body) > 500:
        body = body[:500] + "…"
    print(f"{stamp} {call.method} {call.path} -> {status} {body}", flush=True)


def cli_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    return parser


async def serve_forever(server: FakeServer, describe: Callable[[], Sequence[str]]) -> None:
    """Run ``server`` until interrupted, printing where it listens and each call."""
    async with server:
        for line in describe():
            print(line, flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
