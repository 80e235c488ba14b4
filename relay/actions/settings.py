"""The ``actions:`` section of relay.yaml: where presses arrive and who may press what."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr, field_validator

from relay.confmodel import Duration, StrictModel

__all__ = ["ActionSettings", "AllowList", "SlackActions", "TelegramActions"]


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


class _Inbound(StrictModel):
    path: str

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or "//" in value or not value.isprintable() or " " in value:
            raise ValueError("must be an absolute URL path such as /actions/slack")
        return value.rstrip("/") or "/"


class SlackActions(_Inbound):
    """Slack's interactivity: its Request URL is ``https://YOUR-HOST{path}``."""

    signing_secret: SecretStr
    path: str = "/actions/slack"


class TelegramActions(_Inbound):
    """The bot's webhook (``relay telegram set-webhook`` registers ``https://YOUR-HOST{path}``
    with ``secret_token``, which Telegram then sends in ``X-Telegram-Bot-Api-Secret-Token``)."""

    secret_token: SecretStr
    path: str = "/actions/telegram"

    @field_validator("secret_token")
    @classmethod
    def _telegram_alphabet(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
        if not 16 <= len(text) <= 256 or not set(text) <= allowed:
            raise ValueError(
                "must be 16 to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)"
            )
        return value


class AllowList(StrictModel):
    """Who may press one action: Slack user ids (``U…``/``W…``) and Telegram user ids."""

    slack_users: Annotated[tuple[str, ...], BeforeValidator(_one_or_many)] = ()
    telegram_users: Annotated[tuple[int, ...], BeforeValidator(_one_or_many)] = ()


class ActionSettings(StrictModel):
    slack: SlackActions | None = None
    telegram: TelegramActions | None = None
    allow: dict[str, AllowList] = Field(default_factory=dict)
    """Per action (``resume``, ``cancel``, ``rerun``): who may press it; nobody by default."""
    button_ttl: Duration = Field(7 * 86400.0, gt=0)
    """How long a button works after its message was sent."""

    @field_validator("allow")
    @classmethod
    def _known_actions(cls, value: dict[str, AllowList]) -> dict[str, AllowList]:
        from relay.actions.model import ACTIONS

        unknown = sorted(set(value) - set(ACTIONS))
        if unknown:
            raise ValueError(f"unknown action {unknown[0]!r} (known: {', '.join(ACTIONS)})")
        return value

    def allows(self, action: str, source: str, user_id: str) -> bool:
        """Whether the user may press ``action`` (exact ids only)."""
        allowed = self.allow.get(action)
        if allowed is None:
            return False
        if source == "slack":
            return user_id in allowed.slack_users
        if source == "telegram":
            return user_id.isdigit() and int(user_id) in allowed.telegram_users
        return False
