"""Structured logs: JSON lines off a TTY, readable on one; delivery lines carry ids; no secrets."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from relay.app import RELAY, build_app
from relay.config import load_config
from relay.logs import JsonFormatter, TextFormatter, setup_logging
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import SECRET, read_jsonl, sample, wait_until

Client = TestClient[Any, web.Application]
PATH = "/webhooks/mosaic"
ADMIN = "adm1n-t0ken-never-logged"
HOOK_PATH_SECRET = "p4th-s3cret-never-logged"
HOOK_HEADER_SECRET = "h3ader-s3cret-never-logged"
HOOK_HMAC_SECRET = "hm4c-s3cret-never-logged"
SECRETS = (SECRET, ADMIN, HOOK_PATH_SECRET, HOOK_HEADER_SECRET, HOOK_HMAC_SECRET)


def make_record(msg: str = "delivered", exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad thing")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("relay.dispatch", logging.INFO, __file__, 1, msg, (), exc_info)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_the_extras() -> None:
    record = make_record(event_id="e1", run_id="r1", channel="slack", attempt=2, outcome="sent")
    entry = json.loads(JsonFormatter().format(record))
    assert entry == {
        "ts": pytest.approx(record.created, abs=0.001),
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": "info",
        "logger": "relay.dispatch",
        "msg": "delivered",
        "event_id": "e1",
        "run_id": "r1",
        "channel": "slack",
        "attempt": 2,
        "outcome": "sent",
    }


def test_a_json_line_is_one_line_even_with_newlines_and_tracebacks() -> None:
    line = JsonFormatter().format(make_record("two\nlines", exc=True, path=Path("x")))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "two\nlines"
    assert "ValueError: bad thing" in entry["exc"]
    assert entry["path"] == "x"  # not JSON-serialisable values become text


def test_text_lines_are_readable() -> None:
    record = make_record(event_id="e1", channel="slack", outcome="sent")
    line = TextFormatter().format(record)
    assert "INFO" in line and "relay.dispatch: delivered" in line
    assert line.endswith("[event_id=e1 channel=slack outcome=sent]")
    assert not line.startswith("{")


class FakeStderr(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("fmt", "tty", "json_lines"),
    [
        ("auto", False, True),
        ("auto", True, False),
        ("json", True, True),
        ("text", False, False),
    ],
)
def test_log_format_choice(
    monkeypatch: pytest.MonkeyPatch, root_logging: None, fmt: Any, tty: bool, json_lines: bool
) -> None:
    stream = FakeStderr(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    setup_logging(fmt)
    logging.getLogger("relay.test").info("hello %s", "world", extra={"channel": "c"})
    logging.getLogger("relay.test").debug("not shown at INFO")
    (line,) = stream.getvalue().splitlines()
    if json_lines:
        assert json.loads(line)["msg"] == "hello world"
    else:
        assert line.endswith("relay.test: hello world  [channel=c]")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_serve_log_format(tmp_path: Path, fmt: str) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text("auth: {allow_unsigned: true}\n")  # logs a warning at start
    with socket.socket() as taken:  # then the port is taken: it stops
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        command = [sys.executable, "-m", "relay", "serve", "-c", str(config), "--port", port]
        done = subprocess.run(
            [*command, "--log-format", fmt], capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 1 and "cannot start: port" in done.stderr
    assert "pass --port or set server.port" in done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "allow_unsigned" in line]
    if fmt == "json":
        records = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
        assert json.loads(line)["level"] == "warning"
        assert records[-1]["level"] == "error" and "in use" in records[-1]["msg"]
        assert all(r["time"].endswith("+00:00") and "T" in r["time"] for r in records)
    else:
        assert "WARNING relay.app: auth.allow_unsigned is true" in line


# --- a whole relay: delivery lines and secrets ---------------------------------------------------


async def fake_hook(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    """500 on the first call (retry), 400 on the next (dead letter)."""
    calls: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(1)
        return web.Response(status=500 if len(calls) == 1 else 400, text="nope")

    app = web.Application()
    app.router.add_post(f"/hook/{HOOK_PATH_SECRET}", handle)
    return await aiohttp_server(app)


@pytest.fixture
async def relay_logs(
    write_config: Callable[[str], Path],
    aiohttp_client: Callable[..., Awaitable[Client]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> tuple[list[logging.LogRecord], str, list[str]]:
    """Run a relay through accepted, retried, dead and refused things; return what it logged."""
    hook = await fake_hook(aiohttp_server)
    config = f"""\
server: {{admin_token: {ADMIN}}}
auth: {{secrets: ["{SECRET}"]}}
store: {{url: sqlite:///relay.db, sync: normal}}
delivery: {{backoff: {{initial: 10ms, max: 20ms}}, shutdown_grace: 1s}}
channels:
  archive: {{type: file, path: deliveries.jsonl}}
  hook:
    type: webhook
    url: http://127.0.0.1:{hook.port}/hook/{HOOK_PATH_SECRET}
    headers: {{X-Api-Key: {HOOK_HEADER_SECRET}}}
    secret: {HOOK_HMAC_SECRET}
routes:
  - to: [archive, hook]
"""
    path = write_config(config)
    caplog.set_level(logging.DEBUG)
    client = await aiohttp_client(build_app(load_config(path, env={})))
    relay = client.app[RELAY]
    answer = await client.post(
        PATH, data=json.dumps(sample("run_finished_failed")), headers={SIGNATURE_HEADER: SECRET}
    )
    assert answer.status == 202
    event_id = (await answer.json())["event_id"]
    almost = {SIGNATURE_HEADER: SECRET[:-1]}
    assert (await client.post(PATH, data=b"{}", headers=almost)).status == 401

    async def dead() -> bool:
        return bool(await relay.store.dead_letters(limit=5))

    await wait_until(dead)
    await wait_until(lambda: len(read_jsonl(tmp_path / "deliveries.jsonl")) == 1)

    wrong = {"Authorization": f"Bearer {ADMIN[:-1]}"}
    assert (await client.post("/-/reload", headers=wrong)).status == 401
    path.write_text(config.replace("url: http://", f"url: ftp://{SECRET}@"))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    refused = await client.post("/-/reload", headers=admin)
    assert refused.status == 400
    visible = [await refused.text(), await (await client.get("/readyz")).text()]
    visible += [job.last_error or "" for job in await relay.store.dead_letters(limit=5)]
    records = [r for r in caplog.records if r.name != "aiohttp.access"]
    return records, event_id, visible


async def test_every_delivery_line_names_event_run_channel_attempt_outcome(
    relay_logs: tuple[list[logging.LogRecord], str, list[str]],
) -> None:
    records, event_id, _ = relay_logs
    deliveries = [r for r in records if r.name == "relay.dispatch" and hasattr(r, "outcome")]
    run_id = sample("run_finished_failed")["run_id"]
    seen = sorted((r.channel, r.attempt, r.outcome) for r in deliveries)  # type: ignore[attr-defined]
    assert seen == [("archive", 1, "sent"), ("hook", 1, "retried"), ("hook", 2, "dead")]
    for record in deliveries:
        entry = json.loads(JsonFormatter().format(record))
        assert entry["event_id"] == event_id and entry["run_id"] == run_id
        assert {"ts", "level", "logger", "msg", "channel", "attempt", "outcome"} <= set(entry)


async def test_no_secret_in_any_log_line_answer_or_dead_letter(
    relay_logs: tuple[list[logging.LogRecord], str, list[str]],
) -> None:
    records, _, visible = relay_logs
    assert any(r.levelno >= logging.ERROR and r.name == "relay.reload" for r in records)
    lines = [JsonFormatter().format(r) for r in records] + [
        TextFormatter().format(r) for r in records
    ]
    for secret in SECRETS:
        for text in lines + visible:
            assert secret not in text
            assert secret[:-1] not in text  # nor the near misses that were sent
