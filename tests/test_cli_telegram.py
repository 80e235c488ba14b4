"""``relay telegram set-webhook --url URL [--dry-run]`` against FakeTelegram."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.cli import main
from tests.conftest import BASE_CONFIG
from tests.fakes.telegram import DEFAULT_CHAT_ID, DEFAULT_TOKEN, FakeTelegram

SECRET = "tg_secret-0123456789abcdef"
OTHER_TOKEN = "654321:OTHER-token"
ACTIONS = f"actions:\n  telegram: {{secret_token: {SECRET}, path: /actions/tg}}\n"


def channel(name: str, token: str, telegram: FakeTelegram) -> str:
    return (
        f"  {name}:\n    type: telegram\n    token: '{token}'\n    chat_id: '{DEFAULT_CHAT_ID}'\n"
        f"    api_url: {telegram.url}\n"
    )


def write_config(tmp_path: Path, telegram: FakeTelegram, *bots: tuple[str, str]) -> Path:
    """BASE_CONFIG with a Telegram channel per (name, token) and ``actions.telegram``."""
    channels = "".join(channel(name, token, telegram) for name, token in bots)
    text = BASE_CONFIG.replace("channels:\n", "channels:\n" + channels) + ACTIONS
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    return path


async def relay(*argv: str) -> int:
    """The CLI in a thread (it runs its own event loop; the fake answers on this one)."""
    return await asyncio.to_thread(main, list(argv))


async def test_each_bot_gets_its_webhook_once(
    tmp_path: Path, fake_telegram: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_telegram.tokens.add(OTHER_TOKEN)
    bots = [("ops", DEFAULT_TOKEN), ("alerts", DEFAULT_TOKEN), ("other", OTHER_TOKEN)]
    config = write_config(tmp_path, fake_telegram, *bots)

    assert (
        await relay("telegram", "set-webhook", "--url", "https://relay.test/", "-c", str(config))
        == 0
    )

    ops, other = fake_telegram.webhooks[DEFAULT_TOKEN], fake_telegram.webhooks[OTHER_TOKEN]
    assert ops.url == "https://relay.test/actions/tg?bot=ops"
    assert other.url == "https://relay.test/actions/tg?bot=other"
    assert ops.secret_token == other.secret_token == SECRET
    assert ops.allowed_updates == ["callback_query"]
    assert len(fake_telegram.calls_for("setWebhook")) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "webhook set for ops (also alerts): https://relay.test/actions/tg?bot=ops",
        "webhook set for other: https://relay.test/actions/tg?bot=other",
    ]
    for text in (out, err):
        assert SECRET not in text and DEFAULT_TOKEN not in text and OTHER_TOKEN not in text


async def test_a_dry_run_calls_nothing(
    tmp_path: Path, fake_telegram: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, fake_telegram, ("ops", DEFAULT_TOKEN))
    argv = (
        "telegram",
        "set-webhook",
        "--url",
        "https://relay.test",
        "--dry-run",
        "-c",
        str(config),
    )

    assert await relay(*argv) == 0

    assert fake_telegram.calls == [] and fake_telegram.webhooks == {}
    out = capsys.readouterr().out
    assert out.strip() == (
        "would set the webhook of ops: https://relay.test/actions/tg?bot=ops "
        "(callback queries, secret token)"
    )
    assert SECRET not in out


async def test_a_bot_telegram_refuses_fails_the_command(
    tmp_path: Path, fake_telegram: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, fake_telegram, ("ops", DEFAULT_TOKEN), ("bad", "1:wrong"))

    assert (
        await relay("telegram", "set-webhook", "--url", "https://relay.test", "-c", str(config))
        == 1
    )

    out, err = capsys.readouterr()
    assert "webhook set for ops" in out
    assert "bad: webhook not set: Telegram rejected the bot token" in err
    assert "1:wrong" not in out + err and SECRET not in out + err
    assert list(fake_telegram.webhooks) == [DEFAULT_TOKEN]


@pytest.mark.parametrize(
    ("url", "actions", "message"),
    [
        ("http://relay.test", True, "https://"),
        ("https://relay.test/?x=1", True, "https://"),
        ("relay.test", True, "https://"),
        ("https://me:pa55@relay.test", True, "user or password"),
        ("https://relay.test", False, "actions.telegram is not configured"),
    ],
)
async def test_refusals(
    tmp_path: Path,
    fake_telegram: FakeTelegram,
    capsys: pytest.CaptureFixture[str],
    url: str,
    actions: bool,
    message: str,
) -> None:
    config = write_config(tmp_path, fake_telegram, ("ops", DEFAULT_TOKEN))
    if not actions:
        config.write_text(config.read_text().replace(ACTIONS, ""))

    assert await relay("telegram", "set-webhook", "--url", url, "-c", str(config)) == 1

    assert message in capsys.readouterr().err
    assert fake_telegram.calls == []


async def test_a_config_without_telegram_channels_is_refused(
    tmp_path: Path, fake_telegram: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, fake_telegram)
    assert (
        await relay("telegram", "set-webhook", "--url", "https://relay.test", "-c", str(config))
        == 1
    )
    assert "no Telegram channel" in capsys.readouterr().err
