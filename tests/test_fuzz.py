"""Property tests of the webhook against the real app, on a real port.

Every answer to the webhook is one of the contract's (200/202/400/401/413/422, 408 for a body
that never arrives) with a JSON body, never a 500 or a traceback, and the relay keeps serving.
aiohttp's own request-line/header parser answers malformed heads with a plain-text 400 before any
handler runs: that is the only non-JSON answer allowed.

Bounded for CI: ``RELAY_FUZZ_EXAMPLES`` examples per property (default 200); raise it to dig
deeper, e.g. ``RELAY_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import re
import zlib
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.http_parser import SINGLETON_HEADERS
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.app import RELAY, build_app
from relay.config import load_config
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SAMPLES, SECRET, wait_until

MAX_EXAMPLES = int(os.environ.get("RELAY_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PATH = "/webhooks/mosaic"
LIMIT = 16_384
READ_TIMEOUT = 1.0
FUZZ_CONFIG = BASE_CONFIG + f"server: {{max_body_bytes: {LIMIT}, read_timeout: {READ_TIMEOUT}}}\n"
WEBHOOK_STATUSES = {200, 202, 400, 401, 408, 413, 415, 422}
SAMPLE_BYTES = [p.read_bytes() for p in sorted(SAMPLES.glob("*.json"))]
REQUIRED = ("flag", "agent_id", "run_id", "status")

T = TypeVar("T")


# --- the app on a real port, driven from synchronous Hypothesis tests ----------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def is_json(self) -> bool:
        return self.headers.get("content-type", "").startswith("application/json")


class LiveRelay:
    """The real app served on 127.0.0.1 by its own event loop (Hypothesis tests are sync)."""

    def __init__(self, config: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.client: TestClient[Any, web.Application] = self.run(self._start(config))

    @staticmethod
    async def _start(config: Path) -> TestClient[Any, web.Application]:
        client = TestClient(TestServer(build_app(load_config(config, env={}))))
        await client.start_server()
        return client

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @property
    def port(self) -> int:
        port = self.client.server.port
        assert port is not None
        return port

    def post(self, body: bytes, headers: list[tuple[str, str]], *, chunked: bool = False) -> Answer:
        async def go() -> Answer:
            data: Any = body
            if chunked:

                async def pieces() -> AsyncIterator[bytes]:
                    for start in range(0, len(body), 4096):
                        yield body[start : start + 4096]

                data = pieces()
            async with self.client.post(PATH, data=data, headers=headers) as answer:
                raw = await answer.read()
                return Answer(answer.status, {k.lower(): v for k, v in answer.headers.items()}, raw)

        return self.run(go())

    def raw(self, request: bytes, timeout: float = 5.0) -> Answer | None:
        """Send bytes on a fresh connection and read the answer."""

        async def go() -> Answer | None:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                writer.write(request)
                await writer.drain()
                async with asyncio.timeout(timeout):
                    return await read_answer(reader)
            finally:
                writer.close()

        return self.run(go())

    def raw_after_continue(self, head: bytes, body: bytes, timeout: float = 5.0) -> Answer | None:
        """Send the head, and the body only after the server's ``100 Continue``."""

        async def go() -> Answer | None:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                writer.write(head)
                await writer.drain()
                async with asyncio.timeout(timeout):
                    first = await reader.readuntil(b"\r\n\r\n")
                    if not first.startswith(b"HTTP/1.1 100"):
                        return await read_answer(reader, first)
                    writer.write(body)
                    await writer.drain()
                    return await read_answer(reader)
            finally:
                writer.close()

        return self.run(go())

    async def jobs(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in await self.client.app[RELAY].store.status():
            counts[row.state] = counts.get(row.state, 0) + row.count
        return counts

    def assert_serving(self) -> None:
        body = json.dumps({**json.loads(SAMPLE_BYTES[-1]), "flag": "TEST"}).encode()
        answer = self.post(body, [(SIGNATURE_HEADER, SECRET)])
        assert answer.status == 200, answer

    def assert_all_delivered(self) -> None:
        """Every accepted job reached ``sent``: nothing stuck, nothing dead-lettered."""

        async def settled() -> bool:
            return set(await self.jobs()) <= {"sent", "dead"}

        self.run(wait_until(settled, timeout=20))
        assert "dead" not in self.run(self.jobs())

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveRelay]:
    path = tmp_path / "relay.yaml"
    path.write_text(FUZZ_CONFIG)
    relay = LiveRelay(path)
    yield relay
    relay.close()


@pytest.fixture
def no_unhandled_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if a relay logger reported an unexpected exception."""
    caplog.set_level(logging.WARNING)
    yield
    unexpected = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("relay") and r.levelno >= logging.ERROR
    ]
    assert not unexpected, unexpected


async def read_answer(reader: asyncio.StreamReader, head: bytes = b"") -> Answer | None:
    """The final answer (interim 1xx skipped), its body by ``Content-Length``; None when the
    server closed the connection without answering. (It may linger on, reading.)"""
    try:
        while not head or head.startswith(b"HTTP/1.1 1"):
            head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
        assert not getattr(exc, "partial", b""), "closed in the middle of an answer"
        return None
    lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(lines[0].split(" ")[1]), headers, body)


def check_json_answer(answer: Answer, allowed: set[int]) -> dict[str, Any]:
    assert answer.status in allowed, answer
    assert answer.status != 500
    assert answer.is_json, answer
    data = json.loads(answer.body)
    assert isinstance(data, dict)
    if answer.status >= 400:
        assert isinstance(data["error"], str) and data["error"]
        assert "Traceback" not in answer.body.decode()
    else:
        assert data["status"] in ("accepted", "duplicate", "ok") and data["event_id"]
    if answer.status == 503:
        assert answer.headers["retry-after"].isdigit()
    return data


# --- bodies ---------------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**35), max_value=10**35)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
sample_events = st.sampled_from(SAMPLE_BYTES).map(json.loads)


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A sample with fields replaced, removed or added; NaN/Infinity where floats say so."""
    payload = draw(sample_events)
    keys = [*sorted(payload), "brand_new", *REQUIRED]
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()):
            payload.pop(key, None)
        else:
            payload[key] = draw(json_values)
    return json.dumps(payload, ensure_ascii=draw(st.booleans())).encode()


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLE_BYTES)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(
                st.sampled_from(
                    [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00", b"{", b"]"]
                )
                | st.binary(max_size=4)
            )
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


def with_field(raw_value: str) -> st.SearchStrategy[bytes]:
    """A sample with ``"x": <raw_value>`` spliced in as raw JSON text."""
    return st.sampled_from(SAMPLE_BYTES).map(
        lambda s: b'{"x": ' + raw_value.encode() + b", " + s[1:]
    )


numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,60})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,5})?", fullmatch=True
)


@st.composite
def nested(draw: st.DrawFn) -> str:
    openers = draw(st.lists(st.sampled_from(["[", '{"k": ']), max_size=80))
    closers = "".join("]" if o == "[" else "}" for o in reversed(openers))
    return "".join(openers) + "1" + closers


escapes = st.lists(
    st.sampled_from(
        ["\\ud800", "\\udfff", "\\ud83d\\ude00", "\\u0000", "\\u202e", "a", "\\\\ud800"]
    ),
    min_size=1,
    max_size=4,
).map(lambda parts: '"' + "".join(parts) + '"')

bodies = st.one_of(
    mutated_events(),
    mutated_bytes(),
    sample_events.map(lambda p: json.dumps(p).encode()),
    numbers.flatmap(with_field),
    nested().flatmap(with_field),
    escapes.flatmap(with_field),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.integers(LIMIT - 40, LIMIT + 40).map(lambda n: b'{"pad": "' + b"x" * n + b'"}'),
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def acceptable_json(value: Any) -> bool:
    """Independent reference of the receiver's strictness (depth, number size, Unicode)."""
    if depth(value) > 32:
        return False
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif (
            (isinstance(item, int) and abs(item) >= 10**30)
            or (isinstance(item, float) and item in (float("inf"), float("-inf")))
            or (isinstance(item, str) and re.search("[\ud800-\udfff]", item))
        ):
            return False
    return True


def expected_status(body: bytes, signatures: list[str], chunked: bool = False) -> set[int]:
    """The contract's answer, checked in its order: size (declared) -> signature -> size (read)
    -> JSON -> model."""
    if len(body) > LIMIT and not chunked:
        return {413}
    if signatures != [SECRET]:
        return {401}
    if len(body) > LIMIT:
        return {413}

    def reject(name: str) -> Any:
        raise ValueError(name)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in pairs}) != len(pairs):
            raise ValueError("repeated key")
        return dict(pairs)

    try:
        value = json.loads(body.decode("utf-8"), parse_constant=reject, object_pairs_hook=unique)
    except (ValueError, RecursionError):
        return {400}
    if not acceptable_json(value):
        return {400}
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in REQUIRED):
        return {422}
    return {200, 202}


signatures = st.one_of(
    st.just([SECRET]),
    st.just([SECRET]),
    st.just([SECRET]),
    st.just([]),
    st.lists(st.sampled_from([SECRET, "other"]), min_size=2, max_size=3),
    st.sampled_from([SECRET + "x", SECRET[:-1], SECRET.upper(), "s3cret-ünï", "\u00ff" * 3]).map(
        lambda s: [s]
    ),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40).map(
        lambda s: [s]
    ),
    st.integers(1, 8000).map(lambda n: ["a" * n]),
)


def test_any_body_gets_the_contract_answer(live: LiveRelay, no_unhandled_errors: None) -> None:
    @FUZZ
    @given(body=bodies, sigs=signatures, chunked=st.booleans())
    def check(body: bytes, sigs: list[str], chunked: bool) -> None:
        answer = live.post(body, [(SIGNATURE_HEADER, s) for s in sigs], chunked=chunked)
        check_json_answer(answer, WEBHOOK_STATUSES)
        assert answer.status in expected_status(body, sigs, chunked), (answer, sigs)

    check()
    live.assert_serving()
    live.assert_all_delivered()


# --- headers: content types, encodings, framing, random extra headers ------------------------------

TOKEN = st.text(
    st.sampled_from(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~"
    ),
    min_size=1,
    max_size=20,
)
FIELD_VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80)
FRAMING = {"connection", "expect", "upgrade", "content-encoding", *SINGLETON_HEADERS}
"""Headers the generator sets itself. A repeated singleton header (RFC 9110) is refused by
aiohttp's own parser before any handler runs: the malformed-head property covers that case."""
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "",
]


@dataclass(frozen=True)
class RawRequest:
    head: bytes
    body: bytes
    method: str
    path: str
    expect: bool
    """``Expect: 100-continue``: the body is sent once the handler asks for it."""
    encoding: str


def encode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    return body  # identity, unknown names, and deliberately undecodable ones


@st.composite
def raw_requests(draw: st.DrawFn) -> RawRequest:
    method = draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    path = draw(
        st.sampled_from([PATH] * 6 + [PATH + "/", "/", "/nope", "/-/reload", "/api/x", "/ui"])
    )
    query = draw(st.sampled_from(["", "?a=1", "?" + "q" * 500, "?%ff%fe", "?x=%00"]))
    body = draw(bodies)
    headers = [("Host", "relay.test"), ("Connection", "close")]
    headers += [(SIGNATURE_HEADER, s) for s in draw(signatures) if s.isascii()]
    if draw(st.booleans()):
        headers.append(("Content-Type", draw(st.sampled_from(CONTENT_TYPES) | FIELD_VALUE)))
    encoding = draw(
        st.sampled_from(["", "", "gzip", "deflate", "identity", "br", "zstd", "x-unknown"])
    )
    if encoding:
        headers.append(("Content-Encoding", encoding))
        if draw(st.booleans()):
            body = encode(body, encoding)
    expect = draw(st.booleans())
    if expect:
        headers.append(("Expect", "100-continue"))
    headers += draw(
        st.lists(
            st.tuples(TOKEN.filter(lambda n: n.lower() not in FRAMING), FIELD_VALUE), max_size=6
        )
    )
    if draw(st.booleans()):
        headers.append(("Transfer-Encoding", "chunked"))
        size = draw(st.integers(1, 64))
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    else:
        headers.append(("Content-Length", str(len(body))))
        payload = body
    head = f"{method} {path}{query} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    return RawRequest(head.encode() + b"\r\n", payload, method, path, expect, encoding)


def test_any_headers_get_a_json_contract_answer(live: LiveRelay, no_unhandled_errors: None) -> None:
    @FUZZ
    @given(request=raw_requests())
    def check(request: RawRequest) -> None:
        if request.expect:
            answer = live.raw_after_continue(request.head, request.body)
        else:
            answer = live.raw(request.head + request.body)
        assert answer is not None, "no answer"
        # The relay decodes bodies itself: a misencoded one is a JSON answer too (400, 415).
        if request.method == "POST" and request.path == PATH:
            check_json_answer(answer, WEBHOOK_STATUSES)
        else:
            # Other paths read a body under the same limits before routing answers (413, 400).
            check_json_answer(answer, {400, 404, 405, 413})

    check()
    live.assert_serving()
    live.assert_all_delivered()


# --- malformed request heads ------------------------------------------------------------------------

VALID_HEAD = (
    f"POST {PATH} HTTP/1.1\r\nHost: relay.test\r\nConnection: close\r\n"
    f"{SIGNATURE_HEADER}: {SECRET}\r\nX-Extra: value\r\n"
).encode()


@st.composite
def malformed_heads(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=200))
    data = bytearray(VALID_HEAD)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "long"]))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(
                st.sampled_from([b"\r\n", b"\n", b"\r", b":", b" ", b"\x00", b"\xff", b"\t"])
                | st.binary(max_size=3)
            )
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 6))]
        else:
            data[at:at] = b"a" * draw(st.integers(100, 9000))
    return bytes(data) + b"\r\n"


def test_malformed_requests_get_json_or_the_parsers_plain_400(live: LiveRelay) -> None:
    @FUZZ
    @given(data=malformed_heads())
    def check(data: bytes) -> None:
        answer = live.raw(data)
        if answer is None:
            # Still waiting for the rest of the head: closed at the header deadline.
            assert b"\r\n\r\n" not in data, "a complete head got no answer"
            return
        if answer.is_json:
            check_json_answer(answer, WEBHOOK_STATUSES | {404, 405})
        else:
            assert answer.status == 400, answer
            assert answer.headers["content-type"].startswith("text/plain")
            assert b"Traceback" not in answer.body

    check()
    live.assert_serving()
