"""Each channel's ``verify`` through ``relay check --online``: the local fakes, a real aiosmtpd
server and local sockets answer; nothing is ever sent, and no secret is printed."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from relay.channels import REGISTRY
from relay.cli import main
from tests.channels.conftest import SMTP_PASSWORD, SMTP_USER, HttpEndpoint, SmtpServer, StartSmtp
from tests.fakes.discord import CHANNEL_ID as DISCORD_CHANNEL
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import DEFAULT_TOKEN as SLACK_TOKEN
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import DEFAULT_CHAT_ID, FakeTelegram
from tests.fakes.telegram import DEFAULT_TOKEN as TELEGRAM_TOKEN

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

REVOKED_SLACK = "xoxb-revoked-9f8e7d"
REVOKED_TELEGRAM = "654321:REVOKED-t0ken"
WRONG_PASSWORD = "wrong-smtp-pa55-77"


async def check_online(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], channels: dict[str, Any]
) -> tuple[int, dict[str, str], str]:
    """``relay check --online`` on a config with these channels (in a thread: the fakes run on
    this loop); the exit code, each channel's verdict, and everything printed."""
    config = {
        "auth": {"allow_unsigned": True},
        "channels": channels,
        "routes": [{"to": sorted(channels)}],
    }
    path = tmp_path / "relay.yaml"
    path.write_text(json.dumps(config))
    code = await asyncio.to_thread(main, ["check", "--online", "-c", str(path)])
    out, err = capsys.readouterr()
    verdicts = {}
    for line in out.split("channel checks (", 1)[1].splitlines()[1:]:
        name, _, verdict = line.strip().partition(": ")
        verdicts[name.split(" (")[0]] = verdict
    return code, verdicts, out + err


def slack_api(slack: FakeSlack, token: str = SLACK_TOKEN) -> dict[str, Any]:
    return {"type": "slack", "token": token, "channel": "#video-alerts", "api_url": slack.api_url}


def telegram(
    tg: FakeTelegram, token: str = TELEGRAM_TOKEN, chat: int = DEFAULT_CHAT_ID
) -> dict[str, Any]:
    return {"type": "telegram", "token": token, "chat_id": chat, "api_url": tg.url}


def email(smtp: SmtpServer, password: str = SMTP_PASSWORD, **extra: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp.port,
        "security": "none",
        "username": SMTP_USER,
        "password": password,
        "from": "relay@example.com",
        "to": ["leads@example.com"],
        "timeout": 5,
    } | extra


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_good_credentials_pass_and_nothing_is_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
    smtp_auth_server: SmtpServer,
    http_endpoint: HttpEndpoint,
    fake_discord: FakeDiscord,
) -> None:
    channels = {
        "slack": slack_api(fake_slack),
        "slack-hook": {"type": "slack", "webhook_url": fake_slack.webhook_url()},
        "telegram": telegram(fake_telegram),
        "email": email(smtp_auth_server),
        "hook": {"type": "webhook", "url": http_endpoint.url},
        "archive": {"type": "file", "path": "out/deliveries.jsonl"},
        "stdout": {"type": "console"},
        "discord": {"type": "discord", "webhook_url": fake_discord.webhook_url()},
        "notify": {"type": "apprise", "urls": [http_endpoint.url.replace("http", "json", 1)]},
    }
    assert {channel["type"] for channel in channels.values()} == set(REGISTRY)
    code, verdicts, printed = await check_online(tmp_path, capsys, channels)
    assert code == 0, printed
    assert verdicts == {
        "slack": "ok (bot relay-bot, may post in #video-alerts)",
        "slack-hook": f"ok (127.0.0.1:{fake_slack.port} answers)",
        "telegram": "ok (bot @relay_test_bot, supergroup chat Video alerts)",
        "email": f"ok (logged in at 127.0.0.1:{smtp_auth_server.port} (none))",
        "hook": f"ok (127.0.0.1:{urllib.parse.urlsplit(http_endpoint.url).port} answers)",
        "archive": "ok (deliveries.jsonl is writable)",
        "stdout": "ok (nothing to check)",
        "discord": f"ok (webhook 'Video alerts' in channel {DISCORD_CHANNEL})",
        "notify#1": f"ok (127.0.0.1:{urllib.parse.urlsplit(http_endpoint.url).port} answers)",
    }
    assert [c.method for c in fake_slack.calls] == ["auth.test", "conversations.list"]
    assert [c.method for c in fake_telegram.calls] == ["getMe", "getChat"]
    assert [c.method for c in fake_discord.calls] == ["get_webhook"]
    assert fake_discord.messages() == []
    assert fake_slack.messages("#video-alerts") == []
    assert fake_telegram.messages(DEFAULT_CHAT_ID) == []
    assert smtp_auth_server.logins == [(SMTP_USER, SMTP_PASSWORD)]
    assert smtp_auth_server.mails == [] and http_endpoint.requests == []
    assert not (tmp_path / "out").exists() and not (tmp_path / "relay.db").exists()


async def test_bad_credentials_fail_with_the_reason_and_no_secret(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
    smtp_auth_server: SmtpServer,
) -> None:
    wrong_hook = f"{fake_slack.url}/hooks/wrongsecretpath5c"
    down_path = "/down/s3cret-path-1a"
    (tmp_path / "taken").mkdir()
    code, verdicts, printed = await check_online(
        tmp_path,
        capsys,
        {
            "slack-revoked": slack_api(fake_slack, REVOKED_SLACK),
            "slack-unknown": slack_api(fake_slack) | {"channel": "#nope"},
            "slack-hook-shape": {"type": "slack", "webhook_url": wrong_hook},
            "telegram-revoked": telegram(fake_telegram, REVOKED_TELEGRAM),
            "telegram-chat": telegram(fake_telegram, chat=-100999),
            "email-password": email(smtp_auth_server, WRONG_PASSWORD),
            "email-starttls": email(smtp_auth_server, security="starttls"),
            "hook-down": {"type": "webhook", "url": f"http://127.0.0.1:{free_port()}{down_path}"},
            "file-is-folder": {"type": "file", "path": "taken"},
        },
    )
    assert code == 1
    assert verdicts == {
        "slack-revoked": "FAILED: Slack error 'invalid_auth' (HTTP 200)",
        "slack-unknown": "FAILED: no Slack channel #nope the bot can see ('channel_not_found'); "
        "a private channel shows only once the bot is invited",
        "slack-hook-shape": "FAILED: webhook_url is not a Slack incoming-webhook URL "
        "(https://hooks.slack.com/services/T…/B…/…)",
        "telegram-revoked": "FAILED: Telegram rejected the bot token (or the API URL is wrong)",
        "telegram-chat": "FAILED: chat -100999: Telegram bad request: Chat not found",
        "email-password": "FAILED: SMTP login refused (535): 5.7.8 Authentication credentials invalid",
        "email-starttls": "FAILED: SMTP failure: SMTP STARTTLS extension not supported by server.",
        "hook-down": verdicts["hook-down"],
        "file-is-folder": "FAILED: taken is not a regular file",
    }
    assert verdicts["hook-down"].startswith("FAILED: cannot connect to 127.0.0.1:")
    for secret in (REVOKED_SLACK, REVOKED_TELEGRAM, WRONG_PASSWORD, "wrongsecretpath5c"):
        assert secret.lower() not in printed.lower()
    assert "s3cret-path" not in printed
    assert smtp_auth_server.mails == [] and fake_slack.messages("#video-alerts") == []


async def test_slack_bot_outside_the_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a member: refused, unless the bot may post in public channels it is not in."""
    public = "xoxb-public-writer"
    channels = {"#video-alerts": "C0VIDEO", "#outside": "C0OUTSIDE", "#old": "C0ARCHIVED"}
    async with FakeSlack(
        tokens=[SLACK_TOKEN, public],
        channels=channels,
        not_member=["#outside"],
        archived=["#old"],
        scopes={public: {"chat:write", "chat:write.public", "channels:read"}},
    ) as slack:
        code, verdicts, _ = await check_online(
            tmp_path,
            capsys,
            {
                "outside": slack_api(slack) | {"channel": "#outside"},
                "outside-by-id": slack_api(slack) | {"channel": "C0OUTSIDE"},
                "public-writer": slack_api(slack, public) | {"channel": "#outside"},
                "archived": slack_api(slack) | {"channel": "C0ARCHIVED"},
                "unknown-id": slack_api(slack) | {"channel": "C0NOSUCH"},
            },
        )
    assert code == 1
    refused = "FAILED: the bot relay-bot is not in Slack channel #outside ('not_in_channel')"
    assert verdicts == {
        "outside": f"{refused}: invite it there",
        "outside-by-id": f"{refused}: invite it there",
        "public-writer": "ok (bot relay-bot, may post in #outside)",
        "archived": "FAILED: Slack channel #old is archived ('is_archived')",
        "unknown-id": "FAILED: Slack error 'channel_not_found' (HTTP 200)",
    }


async def test_slack_scopes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without chat:write the bot cannot post; without channels:read the channel is unchecked."""
    no_write, no_read = "xoxb-read-only", "xoxb-write-only"
    async with FakeSlack(
        tokens=[no_write, no_read],
        scopes={no_write: {"channels:read"}, no_read: {"chat:write"}},
    ) as slack:
        code, verdicts, _ = await check_online(
            tmp_path,
            capsys,
            {"no-write": slack_api(slack, no_write), "no-read": slack_api(slack, no_read)},
        )
        assert code == 1
        assert verdicts == {
            "no-write": "FAILED: the token lacks the chat:write scope ('missing_scope')",
            "no-read": "ok (bot relay-bot; the channel is not checked: that needs the "
            "channels:read scope)",
        }
        [refused] = [c for c in slack.calls if c.method == "conversations.list"]
        assert refused.response == {
            "ok": False,
            "error": "missing_scope",
            "needed": "channels:read",
            "provided": "chat:write",
        }


async def test_a_channel_found_on_a_later_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    channels = {f"#c{i:04d}": f"C{i:07d}" for i in range(1500)} | {"#zz-last": "CZZZZZZZ"}
    async with FakeSlack(channels=channels) as slack:
        code, verdicts, _ = await check_online(
            tmp_path, capsys, {"late": slack_api(slack) | {"channel": "#zz-last"}}
        )
    assert (code, verdicts) == (0, {"late": "ok (bot relay-bot, may post in #zz-last)"})
    assert [c.method for c in slack.calls].count("conversations.list") == 2


async def test_an_unreachable_smtp_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], smtp_server: StartSmtp
) -> None:
    server = await smtp_server()
    code, verdicts, _ = await check_online(
        tmp_path,
        capsys,
        {
            "anonymous": email(server) | {"username": None, "password": None},
            "down": email(server) | {"port": free_port(), "username": None, "password": None},
        },
    )
    assert code == 1
    assert verdicts == {
        "anonymous": f"ok (connected at 127.0.0.1:{server.port} (none))",
        "down": "FAILED: cannot reach the SMTP server (SMTPConnectError)",
    }


async def test_a_webhook_over_tls_that_does_not_speak_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], http_endpoint: HttpEndpoint
) -> None:
    plain = http_endpoint.url.replace("http://", "https://")
    code, verdicts, printed = await check_online(
        tmp_path, capsys, {"hook": {"type": "webhook", "url": plain}}
    )
    assert code == 1
    assert verdicts["hook"].startswith("FAILED: TLS handshake with 127.0.0.1:"), verdicts
    assert "tok3n-in-path" not in printed and http_endpoint.requests == []
