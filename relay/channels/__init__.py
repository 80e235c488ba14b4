"""Channels and their explicit registry: adding one = a module, a settings model, one line here.

A channel type's settings model is imported with the registry: checking a config needs it. Its
channel class is named by path and imported when the first channel of the type is built, so a
relay loads only the client libraries (python-telegram-bot, slack-sdk, aiosmtplib) its config
uses. A settings model whose channel needs such a library lives in a module of its own
(``telegram_settings``, ...) that does not import it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay.channels.apprise_settings import AppriseSettings
from relay.channels.base import (
    Channel,
    ChannelSettings,
    DeliveryError,
    Limits,
    Message,
    MessageRef,
    PermanentError,
    RetryableError,
)
from relay.channels.console import ConsoleSettings
from relay.channels.discord_settings import DiscordSettings
from relay.channels.email_settings import EmailSettings
from relay.channels.file import FileSettings
from relay.channels.slack_settings import SlackSettings
from relay.channels.telegram_settings import TelegramSettings
from relay.channels.webhook import WebhookSettings

__all__ = [
    "REGISTRY",
    "Channel",
    "ChannelSettings",
    "ChannelType",
    "DeliveryError",
    "Limits",
    "Message",
    "MessageRef",
    "PermanentError",
    "RetryableError",
    "build_channel",
]

Factory = Callable[[str, Any, Path], Channel]
"""``factory(name, settings, base_dir)``; base_dir resolves relative paths."""


class ChannelType:
    """A channel type: its ``settings`` model and its channel class, ``"module:Class"``, which
    ``factory`` imports on first use."""

    __slots__ = ("_factory", "path", "settings")

    def __init__(self, settings: type[ChannelSettings], path: str) -> None:
        self.settings = settings
        self.path = path
        self._factory: Factory | None = None

    def __repr__(self) -> str:
        return f"ChannelType({self.settings.__name__}, {self.path!r})"

    @property
    def factory(self) -> Factory:
        if self._factory is None:
            module, _, name = self.path.partition(":")
            self._factory = getattr(importlib.import_module(module), name)
        return self._factory


REGISTRY: dict[str, ChannelType] = {
    "console": ChannelType(ConsoleSettings, "relay.channels.console:ConsoleChannel"),
    "file": ChannelType(FileSettings, "relay.channels.file:FileChannel"),
    "slack": ChannelType(SlackSettings, "relay.channels.slack:SlackChannel"),
    "telegram": ChannelType(TelegramSettings, "relay.channels.telegram:TelegramChannel"),
    "email": ChannelType(EmailSettings, "relay.channels.email:EmailChannel"),
    "webhook": ChannelType(WebhookSettings, "relay.channels.webhook:WebhookChannel"),
    "apprise": ChannelType(AppriseSettings, "relay.channels.apprise:AppriseChannel"),
    "discord": ChannelType(DiscordSettings, "relay.channels.discord:DiscordChannel"),
}


def build_channel(name: str, settings: ChannelSettings, base_dir: Path) -> Channel:
    """A channel of ``settings.type``; the first of a type imports its module (and library)."""
    return REGISTRY[settings.type].factory(name, settings, base_dir)
