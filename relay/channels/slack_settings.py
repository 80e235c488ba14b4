"""The settings of a Slack channel (``type: slack``), apart from the channel: checking a config
does not load slack-sdk."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import SecretStr, field_validator, model_validator

from relay.channels.base import ChannelSettings, http_url
from relay.confmodel import Duration

__all__ = ["SlackSettings"]


class SlackSettings(ChannelSettings):
    """``token`` + ``channel`` (Web API) or ``webhook_url`` (incoming webhook, post only)."""

    type: Literal["slack"]
    token: SecretStr | None = None
    channel: str | None = None
    webhook_url: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    timeout: Duration = 30.0

    @field_validator("token", "webhook_url")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        return SecretStr(http_url(value.get_secret_value(), "https://hooks.slack.com/services/…"))

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        url = http_url(value, "https://slack.com/api/")
        return url if url.endswith("/") else url + "/"

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        if (self.token is None) == (self.webhook_url is None):
            raise ValueError(
                "set exactly one of 'token' (Web API: posts, edits, threads) "
                "or 'webhook_url' (incoming webhook: posts only)"
            )
        if self.token is not None and not self.channel:
            raise ValueError("'channel' is required with 'token' (e.g. '#video-alerts' or C0123)")
        if self.webhook_url is not None and self.channel:
            raise ValueError("'channel' cannot be used with 'webhook_url' (Slack fixes it)")
        return self
