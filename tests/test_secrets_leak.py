"""No configured secret shows anywhere a person or another program can read it.

A realistic session runs through the real app: valid, duplicate, badly signed and broken webhooks,
admin calls, deliveries to every channel type (some succeed, some fail and dead-letter), and the
CLI's check, status and dead-letter listing. Then every log record (root logger at DEBUG, as the
relay's own formatters write it), every HTTP answer, the CLI output and the files the relay wrote
(store included) are searched for every configured secret, token, password and secret URL part.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from relay.app import RELAY
from relay.cli import main
from relay.logs import JsonFormatter, TextFormatter
from tests.channels.conftest import SMTP_PASSWORD, SMTP_USER
from tests.conftest import sample, sample_names
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.relay_rig import ADMIN_TOKEN, WEBHOOK_SECRETS, Client, running_rig

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

TEST_SIDE_LOGGERS = ("mail.log",)
"""The in-process SMTP server's own log (it sees the password; it is not the relay)."""
GOOD = ("slack-api", "slack-hook", "telegram", "email", "hook", "archive")
FAILING = {
    "slack-revoked": "invalid_auth",
    "slack-hook-wrong": "HTTP 404",
    "telegram-revoked": "rejected the bot token",
    "email-wrong-password": "535",
    "hook-down": "cannot reach",
    "broken-template": "template error",
}


def forms(secret: str) -> set[str]:
    """The ways a secret could be written out: as is, lower-cased, URL-encoded, base64."""
    encoded = base64.b64encode(secret.encode()).decode()
    return {
        secret,
        secret.lower(),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        encoded.rstrip("="),
    }


def formatted(record: logging.LogRecord) -> str:
    """The record as the relay's JSON and text formatters write it (extras, traceback)."""
    return JsonFormatter().format(record) + "\n" + TextFormatter().format(record)


def written_files(folder: Path) -> dict[str, str]:
    """What the relay wrote next to its config (store, WAL, delivery files)."""
    return {
        path.name: path.read_bytes().decode("utf-8", "replace")
        for path in folder.iterdir()
        if path.is_file() and path.name != "relay.yaml"
    }


async def run_session(rig: Any) -> None:
    names = [n for n in sample_names() if n != "test"]
    for name in names:
        assert await rig.post(sample(name)) == 202
    assert await rig.post(sample("test"), WEBHOOK_SECRETS[1]) == 200
    assert await rig.post(sample(names[0])) == 200  # duplicate
    for bad in (
        WEBHOOK_SECRETS[0] + "x",
        WEBHOOK_SECRETS[0][:-1],
        WEBHOOK_SECRETS[0].upper(),
        f"{WEBHOOK_SECRETS[0]}, {WEBHOOK_SECRETS[1]}",
        ADMIN_TOKEN,
        "",
        None,
    ):
        assert await rig.post(sample("run_progress"), bad) == 401
    assert await rig.post(b"{not json") == 400
    assert await rig.post(b"x" * 1_100_000) == 413
    assert await rig.post({"flag": "RUN_FINISHED"}) == 422
    for method, path, headers in [
        ("GET", "/healthz", {}),
        ("GET", "/readyz", {}),
        ("GET", "/metrics", {}),
        ("GET", "/nope", {}),
        ("GET", "/webhooks/mosaic", {}),
        ("POST", "/-/reload", {}),
        ("POST", "/-/reload", {"Authorization": f"Bearer {ADMIN_TOKEN}x"}),
        ("POST", "/-/reload", {"Authorization": f"Bearer {WEBHOOK_SECRETS[0]}"}),
        ("POST", "/-/reload", {"Authorization": f"Bearer {ADMIN_TOKEN}"}),
    ]:
        await rig.request(method, path, headers=headers)


async def test_no_secret_in_logs_answers_cli_output_or_files(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
    aiohttp_client: Callable[..., Awaitable[Client]],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_rig(
        tmp_path, fake_slack, fake_telegram, aiohttp_client, failing=True
    ) as rig:
        await run_session(rig)
        states = await rig.settle()
        events = len(sample_names()) - 1
        for channel in GOOD:
            assert states.get((channel, "sent")) == events + (channel == "archive"), states
        for channel in FAILING:
            assert states.get((channel, "dead")) == events, states
        dead = await rig.client.app[RELAY].store.dead_letters(limit=1000)
        for job in dead:
            assert FAILING[job.channel] in (job.last_error or ""), job.last_error

        assert main(["check", "-c", str(rig.config)]) == 0
        assert await asyncio.to_thread(main, ["status", "-c", str(rig.config)]) == 0
        assert await asyncio.to_thread(main, ["dlq", "list", "-c", str(rig.config)]) == 0
        cli = capsys.readouterr()
        files = await asyncio.to_thread(written_files, tmp_path)
        secrets = rig.secrets

    secrets.append(base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode())
    logs = [formatted(r) for r in caplog.records if not r.name.startswith(TEST_SIDE_LOGGERS)]
    assert any(r.name.startswith("httpx") for r in caplog.records), "library logs not captured"
    assert any("***" in line for line in logs), "no masked secret: the filters were not tested"
    assert "invalid_auth" in cli.out and "relay.db" in files

    places = {
        **{f"log line {i}": text for i, text in enumerate(logs)},
        **{f"HTTP answer {i}": text for i, text in enumerate(rig.answers)},
        "CLI stdout": cli.out,
        "CLI stderr": cli.err,
        **{f"file {name}": text for name, text in files.items()},
    }
    leaks = [
        (where, secret)
        for secret in secrets
        for form in forms(secret)
        for where, text in places.items()
        if form in text
    ]
    assert not leaks, leaks
