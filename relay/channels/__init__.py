"""Channels and their explicit registry: adding one = one module, one settings model, one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

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
from relay.channels.console import ConsoleChannel, ConsoleSettings
from relay.channels.email import EmailChannel, EmailSettings
from relay.channels.file import FileChannel, FileSettings
from relay.channels.slack import SlackChannel, SlackSettings
from relay.channels.telegram import TelegramChannel, TelegramSettings
from relay.channels.webhook import WebhookChannel, WebhookSettings

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


class ChannelType(NamedTuple):
    settings: type[ChannelSettings]
    factory: Callable[[str, Any, Path], Channel]
    """``factory(name, settings, base_dir)``; base_dir resolves relative paths."""


REGISTRY: dict[str, ChannelType] = {
    "console": ChannelType(ConsoleSettings, ConsoleChannel),
    "file": ChannelType(FileSettings, FileChannel),
    "slack": ChannelType(SlackSettings, SlackChannel),
    "telegram": ChannelType(TelegramSettings, TelegramChannel),
    "email": ChannelType(EmailSettings, EmailChannel),
    "webhook": ChannelType(WebhookSettings, WebhookChannel),
}


def build_channel(name: str, settings: ChannelSettings, base_dir: Path) -> Channel:
    return REGISTRY[settings.type].factory(name, settings, base_dir)
