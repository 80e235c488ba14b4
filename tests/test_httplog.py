"""aiohttp's parser errors reach the log without the raw request bytes, once per client a minute."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.test_utils import TestClient

from relay.app import build_app
from relay.config import load_config
from relay.httplog import HTTP_LOG, ParserErrorLog
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SECRET

Client = TestClient[Any, web.Application]
MALFORMED = (
    f"POST /webhooks/mosaic HTTP/1.1\r\nHost: relay\r\n{SIGNATURE_HEADER}: {SECRET}\x00\r\n\r\n"
).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    return await aiohttp_client(build_app(load_config(write_config(BASE_CONFIG), env={})))


async def send_malformed(client: Client) -> bytes:
    """The malformed request on a fresh connection; what came back before the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(MALFORMED)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


def server_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aiohttp.server"]


async def test_a_malformed_header_is_one_warning_without_its_bytes(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await send_malformed(client)
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]

    [record] = server_records(caplog)
    assert record.levelno == logging.WARNING
    assert record.exc_info is None and record.exc_text is None
    assert "127.0.0.1" in record.getMessage() and "BadHttpMessage" in record.getMessage()
    assert SECRET not in caplog.text
    assert SECRET[:8] not in caplog.text and "\\x00" not in caplog.text


async def test_a_flood_is_one_line_per_client_per_minute(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    client.app[HTTP_LOG].clock = clock
    for _ in range(5):
        await send_malformed(client)
    assert len(server_records(caplog)) == 1
    clock.now += 59
    await send_malformed(client)
    assert len(server_records(caplog)) == 1
    clock.now += 2
    for _ in range(3):
        await send_malformed(client)
    assert len(server_records(caplog)) == 2
    assert SECRET not in caplog.text
    assert (await client.get("/healthz")).status == 200


def test_clients_are_counted_apart_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    log = ParserErrorLog(logging.getLogger("test.httplog"), clock=clock, max_clients=2)
    bad = BadHttpMessage(f"Invalid header value char:\n\n  b'X: {SECRET}\\x00'")
    for client in ["1.1.1.1", "2.2.2.2", "1.1.1.1", "3.3.3.3", "1.1.1.1"]:
        log.exception("Error handling request from %s", client, exc_info=bad)
    clients = [r.args[0] for r in caplog.records if isinstance(r.args, tuple)]
    # 1.1.1.1 was forgotten when 3.3.3.3 came (two clients kept at most): it is logged again.
    assert clients == ["1.1.1.1", "2.2.2.2", "3.3.3.3", "1.1.1.1"]
    assert SECRET not in caplog.text


def test_a_debug_line_stays_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = ParserErrorLog(logging.getLogger("test.httplog"))
    log.debug("Error handling request from %s", "1.1.1.1", exc_info=BadHttpMessage(SECRET))
    [record] = caplog.records
    assert record.levelno == logging.DEBUG and SECRET not in caplog.text


def test_other_errors_pass_through_untouched(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = ParserErrorLog(logging.getLogger("test.httplog"))
    for _ in range(2):
        log.exception("Unhandled exception", exc_info=RuntimeError("boom"))
    log.warning("plain %s", "words")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "Unhandled exception"),
        (logging.ERROR, "Unhandled exception"),
        (logging.WARNING, "plain words"),
    ]
    assert "RuntimeError: boom" in caplog.text
