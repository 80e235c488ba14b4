"""Every request body outside the webhook arrives within ``server.read_timeout`` or gets 408, and
only so many may be arriving at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import build_app
from relay.bodies import BODY_READS
from relay.config import load_config
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SECRET, wait_until

Client = TestClient[Any, web.Application]
TOKEN = "adm1n-t0ken-for-tests"
PATHS = ["/ui/login", "/api/route-test", "/-/reload"]


@pytest.fixture
async def client(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    server = {"admin_token": TOKEN, "read_timeout": "300ms"}
    text = BASE_CONFIG + f"server: {json.dumps(server)}\n"
    return await aiohttp_client(build_app(load_config(write_config(text), env={})))


def head(path: str, length: int = 500, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: relay", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@contextlib.asynccontextmanager
async def connection(
    client: Client,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """A byte every 50 ms, until done or the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)


async def answer_then_close(reader: asyncio.StreamReader) -> tuple[int, bytes, dict[str, Any]]:
    """Status, head and JSON body of the one answer; fails unless the server then closes (a
    reset counts: the client was still sending when it did)."""
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
    return int(head.split(b" ")[1]), head, json.loads(body)


@pytest.mark.parametrize("path", PATHS)
async def test_a_trickled_body_gets_408_at_the_deadline_and_the_connection_closes(
    client: Client, path: str
) -> None:
    async with connection(client) as (reader, writer):
        writer.write(head(path))
        sending = asyncio.create_task(trickle(writer, b"token=" + b"x" * 494))
        try:
            status, answer_head, body = await answer_then_close(reader)
        finally:
            sending.cancel()
    assert status == 408, body
    assert body == {"error": "body not received within 0.3s"}
    assert b"Connection: close" in answer_head
    assert client.app[BODY_READS].active == 0


@pytest.mark.parametrize(("path", "expected"), [("/healthz", 405), ("/nowhere", 404)])
async def test_a_trickled_body_without_a_route_is_answered_and_cut_off_at_the_deadline(
    client: Client, path: str, expected: int
) -> None:
    async with connection(client) as (reader, writer):
        writer.write(head(path))
        sending = asyncio.create_task(trickle(writer, b"x" * 500))
        try:
            status, _, body = await answer_then_close(reader)
        finally:
            sending.cancel()
    assert status == expected and body["error"]


async def test_past_the_limit_of_slow_bodies_a_new_one_gets_503(client: Client) -> None:
    reads = client.app[BODY_READS]
    reads.limit = 1
    async with connection(client) as (slow_reader, slow_writer):
        slow_writer.write(head("/ui/login") + b"token=")
        await slow_writer.drain()
        await wait_until(lambda: reads.active == 1)
        async with connection(client) as (reader, writer):
            writer.write(head("/api/route-test") + b"{")
            await writer.drain()
            status, answer_head, body = await answer_then_close(reader)
        assert status == 503 and b"Retry-After: 1" in answer_head
        assert "too many request bodies" in body["error"]

        # A body that came whole with its head waits for nothing: it is never refused.
        async with connection(client) as (reader, writer):
            writer.write(head("/ui/login", length=7) + b"token=x")
            await writer.drain()
            async with asyncio.timeout(5):
                first_line = await reader.readline()
        assert b" 401 " in first_line

        status, _, _ = await answer_then_close(slow_reader)
        assert status == 408
    assert reads.active == 0
    answer = await client.post("/ui/login", data={"token": TOKEN}, allow_redirects=False)
    assert answer.status == 303


async def test_an_announced_body_over_the_limit_is_413_without_reading(client: Client) -> None:
    async with connection(client) as (reader, writer):
        writer.write(head("/ui/login", length=10_000_000))
        await writer.drain()
        status, _, body = await answer_then_close(reader)
    assert status == 413 and "larger than" in body["error"]


async def test_a_multipart_form_is_read_once_and_still_parsed(client: Client) -> None:
    from aiohttp import FormData

    form = FormData()
    form.add_field("token", TOKEN)
    form.add_field("note", b"x", filename="x.txt")  # forces multipart/form-data
    answer = await client.post("/ui/login", data=form, allow_redirects=False)
    assert answer.status == 303


async def test_an_unread_webhook_body_is_not_drained_past_the_deadline(client: Client) -> None:
    """The webhook answers some requests without reading their body (413 by Content-Length):
    aiohttp then drains the rest for a while; that while is the read deadline too."""
    async with connection(client) as (reader, writer):
        writer.write(head("/webhooks/mosaic", length=5_000_000, **{SIGNATURE_HEADER: SECRET}))
        writer.write(b"{")
        await writer.drain()
        status, _, _ = await answer_then_close(reader)
    assert status == 413
