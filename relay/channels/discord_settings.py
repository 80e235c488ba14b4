"""The settings of a Discord channel (``type: discord``), apart from the channel.

``webhook_url`` is a secret (its path holds the webhook's token): it is never shown, and errors
about it name only "Discord".
"""

from __future__ import annotations

import urllib.parse
from typing import Literal

from pydantic import SecretStr, field_validator

from relay.channels.base import ChannelSettings, http_url
from relay.confmodel import Duration

__all__ = ["DiscordSettings", "webhook_parts"]

EXAMPLE = "https://discord.com/api/webhooks/ID/TOKEN"


def webhook_parts(url: str) -> tuple[str, str] | None:
    """``(id, token)`` of a webhook URL whose path ends in ``/webhooks/{id}/{token}``."""
    segments = urllib.parse.urlsplit(url).path.rstrip("/").split("/")
    if len(segments) >= 3 and segments[-3] == "webhooks" and all(segments[-2:]):
        return segments[-2], segments[-1]
    return None


class DiscordSettings(ChannelSettings):
    """A Discord webhook: ``https://discord.com/api/webhooks/{id}/{token}`` (discordapp.com and a
    local test server work too)."""

    type: Literal["discord"]
    webhook_url: SecretStr
    username: str | None = None
    """Shown as the sender instead of the webhook's own name."""
    avatar_url: str | None = None
    thread_id: int | str | None = None
    """Post into this thread (or forum post) of the webhook's channel."""
    timeout: Duration = 30.0

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr) -> SecretStr:
        try:
            url = http_url(value.get_secret_value())
        except ValueError:
            raise ValueError(f"must be a Discord webhook URL such as {EXAMPLE}") from None
        parts = urllib.parse.urlsplit(url)
        if parts.query or parts.fragment or webhook_parts(url) is None:
            raise ValueError(f"must be a Discord webhook URL such as {EXAMPLE}")
        return SecretStr(url.rstrip("/"))

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= len(value.strip()) <= 80:
            raise ValueError("must be 1 to 80 characters")
        return value.strip() if value is not None else None

    @field_validator("avatar_url")
    @classmethod
    def _avatar_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value, "https://example.com/avatar.png")

    @field_validator("thread_id")
    @classmethod
    def _thread_id(cls, value: int | str | None) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        if not text.isdigit():
            raise ValueError("must be a thread's id (digits)")
        return text
