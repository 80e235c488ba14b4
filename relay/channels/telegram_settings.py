"""The settings of a Telegram channel (``type: telegram``), apart from the channel: checking a
config does not load python-telegram-bot."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, field_validator

from relay.channels.base import ChannelSettings, http_url
from relay.confmodel import Duration

__all__ = ["TelegramSettings"]


class TelegramSettings(ChannelSettings):
    type: Literal["telegram"]
    token: SecretStr
    chat_id: int | str
    message_thread_id: int | None = None
    disable_notification: bool = False
    api_url: str = "https://api.telegram.org"
    timeout: Duration = 30.0

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        if not token:
            raise ValueError("is empty")
        if any(ch in token for ch in "/?#% \t"):
            raise ValueError("is not a bot token (expected something like 123456:ABC-DEF...)")
        return SecretStr(token)

    @field_validator("chat_id")
    @classmethod
    def _chat_id(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty")
        return value.strip() if isinstance(value, str) else value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return http_url(value, "https://api.telegram.org").rstrip("/")
