"""Pytest fixtures yielding started fakes; load with ``pytest_plugins = ["tests.fakes.fixtures"]``.

Each clears the proxy variables first: slack-sdk reads ``HTTP(S)_PROXY`` and ignores ``NO_PROXY``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.mosaic import FakeMosaic
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram

__all__ = ["clear_proxy_env", "fake_discord", "fake_mosaic", "fake_slack", "fake_telegram"]

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def clear_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake_slack(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSlack]:
    """Token ``xoxb-test-token``; channel ``#video-alerts`` = ``C0VIDEO`` with one webhook."""
    clear_proxy_env(monkeypatch)
    async with FakeSlack() as slack:
        yield slack


@pytest.fixture
async def fake_telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    """Token ``123456:TEST-token``; supergroup ``-1001234567890``."""
    clear_proxy_env(monkeypatch)
    async with FakeTelegram() as telegram:
        yield telegram


@pytest.fixture
async def fake_mosaic(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeMosaic]:
    """Key ``mk_test_key_0123456789``; no agents or runs until the test adds them."""
    clear_proxy_env(monkeypatch)
    async with FakeMosaic() as mosaic:
        yield mosaic


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """One webhook, ``fake_discord.webhook_url()``."""
    clear_proxy_env(monkeypatch)
    async with FakeDiscord() as discord:
        yield discord
