"""``relay test`` (one marked message through a real channel, no store) and the channel checks
``serve`` runs in the background at start and after each reload."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from relay.app import RELAY, Relay, build_app
from relay.channels import Limits, Message, MessageRef
from relay.channels.base import VerifyError
from relay.cli import main
from relay.config import load_config
from relay.confmodel import RateLimit
from relay.receiver import SIGNATURE_HEADER
from relay.verify import check_channels
from tests.conftest import SAMPLES, SECRET, sample, wait_until
from tests.fakes.slack import DEFAULT_TOKEN as SLACK_TOKEN
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import DEFAULT_CHAT_ID, FakeTelegram
from tests.fakes.telegram import DEFAULT_TOKEN as TELEGRAM_TOKEN

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

Client = TestClient[Any, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
REVOKED = "xoxb-revoked-3c2b1a"
ADMIN = "adm1n-for-checks"


def write(tmp_path: Path, channels: dict[str, Any]) -> Path:
    config = {
        "server": {"admin_token": ADMIN},
        "auth": {"secrets": [SECRET]},
        "store": {"url": "sqlite:///relay.db", "sync": "normal"},
        "delivery": {"shutdown_grace": "1s"},
        "channels": channels,
        "routes": [{"to": sorted(channels)}],
    }
    path = tmp_path / "relay.yaml"
    path.write_text(json.dumps(config))
    return path


def slack(fake: FakeSlack, token: str = SLACK_TOKEN) -> dict[str, Any]:
    return {"type": "slack", "token": token, "channel": "#video-alerts", "api_url": fake.api_url}


async def relay_test(
    capsys: pytest.CaptureFixture[str], config: Path, *argv: str
) -> tuple[int, str, str]:
    """``relay test`` in a thread (the fakes answer on this loop)."""
    code = await asyncio.to_thread(main, ["test", "-c", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- relay test --------------------------------------------------------------------------------


async def test_relay_test_sends_one_marked_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_slack: FakeSlack
) -> None:
    config = write(tmp_path, {"team": slack(fake_slack)})
    code, out, err = await relay_test(capsys, config, "team")

    [posted] = fake_slack.messages("#video-alerts")
    assert (code, err) == (0, "")
    assert out == f"team (slack): sent (message {posted.ts} in C0VIDEO)\n"
    assert posted.text.startswith("[relay test] ") and "Test" in posted.text
    assert posted.blocks is not None
    assert posted.blocks[0] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "[relay test]"}],
    }
    assert [call.method for call in fake_slack.calls] == ["chat.postMessage"]
    assert not (tmp_path / "relay.db").exists()


async def test_relay_test_renders_a_given_event_within_the_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_telegram: FakeTelegram
) -> None:
    """The marker fits even when the event fills a Telegram message to its limit."""
    event = sample("run_finished_failed") | {"status_message": "out of credits " * 400}
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    channel = {
        "type": "telegram",
        "token": TELEGRAM_TOKEN,
        "chat_id": DEFAULT_CHAT_ID,
        "api_url": fake_telegram.url,
    }
    config = write(tmp_path, {"chat": channel})
    code, out, _ = await relay_test(capsys, config, "chat", str(event_file))

    assert code == 0, out
    [sent] = fake_telegram.messages(DEFAULT_CHAT_ID)
    assert sent.text is not None and sent.text.startswith("[relay test] ")
    assert "out of credits" in sent.text
    assert out == f"chat (telegram): sent (message {sent.message_id} in {DEFAULT_CHAT_ID})\n"


async def test_relay_test_reports_the_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_slack: FakeSlack
) -> None:
    config = write(tmp_path, {"team": slack(fake_slack, REVOKED)})
    code, out, err = await relay_test(capsys, config, "team")
    assert code == 1
    assert out == "team (slack): FAILED: Slack error 'invalid_auth' (HTTP 200)\n"
    assert REVOKED not in out + err and fake_slack.messages("#video-alerts") == []


def test_relay_test_refuses_unknown_channels_and_bad_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, {"archive": {"type": "file"}})
    assert main(["test", "-c", str(config), "nope"]) == 1
    assert capsys.readouterr().err == "relay: no channel named 'nope' (configured: archive)\n"
    broken = tmp_path / "broken.json"
    broken.write_text('{"flag": "TEST"')
    assert main(["test", "-c", str(config), "archive", str(broken)]) == 1
    assert capsys.readouterr().err.startswith("relay: not valid JSON")
    assert main(["test", "-c", str(config), "archive", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert not (tmp_path / "deliveries.jsonl").exists()
    assert main(["test", "-c", str(config), "archive", str(SAMPLES / "run_progress.json")]) == 0
    [line] = (tmp_path / "deliveries.jsonl").read_text().splitlines()
    assert json.loads(line)["route"] == "relay test"
    assert not (tmp_path / "relay.db").exists()


# --- background checks ------------------------------------------------------------------------


def check_ok(relay: Relay, channel: str) -> float | None:
    return relay.metrics.registry.get_sample_value("relay_channel_check_ok", {"channel": channel})


async def test_startup_checks_warn_and_set_the_metric_then_follow_reloads(
    tmp_path: Path,
    aiohttp_client: MakeClient,
    fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    path = write(tmp_path, {"good": slack(fake_slack), "bad": slack(fake_slack, REVOKED)})
    client = await aiohttp_client(build_app(load_config(path, env={})))
    relay = client.app[RELAY]

    await wait_until(lambda: check_ok(relay, "bad") is not None)
    assert (check_ok(relay, "good"), check_ok(relay, "bad")) == (1.0, 0.0)
    [warning] = [r for r in caplog.records if r.name == "relay.verify" and r.levelname == "WARNING"]
    expected = "channel bad: check failed: Slack error 'invalid_auth' (HTTP 200)"
    assert warning.getMessage() == expected
    assert getattr(warning, "channel", None) == "bad"
    assert REVOKED not in caplog.text
    assert fake_slack.messages("#video-alerts") == []

    write(tmp_path, {"bad": slack(fake_slack)})  # fixed, and "good" removed
    answer = await client.post("/-/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status == 200
    await wait_until(lambda: check_ok(relay, "bad") == 1.0)
    assert check_ok(relay, "good") is None
    assert [(r.channel, r.ok) for r in relay.checks.results] == [("bad", True)]  # type: ignore[union-attr]


class Silent:
    """An SMTP 'server' that accepts connections and never greets."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected.set()
        try:
            await reader.read()  # until the client gives up
        finally:
            writer.close()


@pytest.fixture
async def silent_smtp() -> AsyncIterator[Silent]:
    silent = Silent()
    server = await asyncio.start_server(silent.handle, "127.0.0.1", 0)
    silent.port = server.sockets[0].getsockname()[1]
    yield silent
    server.close()
    await server.wait_closed()


async def test_checks_never_hold_up_startup_or_webhooks_and_stop_with_the_app(
    tmp_path: Path, aiohttp_client: MakeClient, silent_smtp: Silent
) -> None:
    mail = {
        "type": "email",
        "host": "127.0.0.1",
        "port": silent_smtp.port,
        "security": "none",
        "from": "relay@example.com",
        "to": ["leads@example.com"],
        "timeout": "10m",
    }
    path = write(tmp_path, {"mail": mail, "archive": {"type": "file"}})
    # The check of "mail" waits up to 10 minutes: a start held up by it would end here.
    client = await asyncio.wait_for(aiohttp_client(build_app(load_config(path, env={}))), 30)
    relay = client.app[RELAY]
    checks = relay.checks
    assert checks is not None
    await asyncio.wait_for(silent_smtp.connected.wait(), 5)

    answer = await client.post(
        "/webhooks/mosaic",
        data=json.dumps(sample("run_finished_failed")),
        headers={SIGNATURE_HEADER: SECRET},
    )
    assert answer.status == 202
    assert checks.running and checks.results == []

    await client.close()
    assert not checks.running


async def test_checks_can_be_switched_off(
    tmp_path: Path, aiohttp_client: MakeClient, fake_slack: FakeSlack
) -> None:
    path = write(tmp_path, {"team": slack(fake_slack)})
    client = await aiohttp_client(build_app(load_config(path, env={}), check_channels=False))
    relay = client.app[RELAY]
    assert relay.checks is None
    assert (await client.get("/healthz")).status == 200
    assert check_ok(relay, "team") is None
    assert fake_slack.calls == []


class Stub:
    """A channel whose ``verify`` the test scripts."""

    render_kind: ClassVar[str] = "plain"
    limits: ClassVar[Limits] = Limits()
    default_rate_limit: ClassVar[RateLimit | None] = None

    def __init__(self, name: str, verify: Callable[[], Awaitable[str]]) -> None:
        self.name = name
        self._verify = verify

    @property
    def rate_key(self) -> str:
        return self.name

    async def start(self, session: aiohttp.ClientSession) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, message: Message) -> MessageRef | None:
        return None

    async def verify(self) -> str:
        return await self._verify()


async def test_one_check_cannot_stall_or_break_the_others() -> None:
    async def hangs() -> str:
        await asyncio.Event().wait()
        return "never"

    async def breaks() -> str:
        raise RuntimeError("https://hooks.example/s3cret in a library's message")

    async def refuses() -> str:
        raise VerifyError("token refused")

    async def passes() -> str:
        return "fine"

    stubs = {
        name: Stub(name, verify)
        for name, verify in [("a", hangs), ("b", breaks), ("c", refuses), ("d", passes)]
    }
    results = await check_channels(stubs, within=0.05)
    assert [(r.channel, r.ok, r.detail) for r in results] == [
        ("a", False, "no answer within 0.05s"),
        ("b", False, "the check failed unexpectedly (RuntimeError)"),
        ("c", False, "token refused"),
        ("d", True, "fine"),
    ]
    assert [r.line() for r in results][2:] == ["c (?): FAILED: token refused", "d (?): ok (fine)"]


@pytest.mark.parametrize(("key", "ok"), [("mk_test_key_0123456789", True), ("mk_revoked", False)])
async def test_check_online_verifies_the_mosaic_key(
    fake_mosaic: Any,
    write_config: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    key: str,
    ok: bool,
) -> None:
    config = (
        f'auth: {{secrets: ["{SECRET}"]}}\nchannels: {{out: {{type: console}}}}\n'
        f"routes: [{{to: [out]}}]\nmosaic: {{api_key: {key}, api_url: '{fake_mosaic.url}'}}\n"
    )
    code = await asyncio.to_thread(main, ["check", "--online", "-c", str(write_config(config))])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "mosaic (api)" in line)
    assert code == (0 if ok else 1)
    assert ("ok (key accepted for Fake Studio)" in line) if ok else ("FAILED: key refused" in line)
    assert key not in out
    assert [call.method for call in fake_mosaic.calls] == ["GET /whoami"]
