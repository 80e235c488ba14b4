"""The settings of an Apprise channel (``type: apprise``), apart from the channel: checking a
config imports Apprise only when the config has such a channel.

Each URL is a secret (Apprise URLs carry tokens and passwords in every part) and becomes a
delivery destination of its own: ``team-ntfy#1``, ``team-ntfy#2``, … with its own jobs, retries,
dead letters and rate limit, so a failing Matrix never resends to ntfy.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr

from relay.channels.apprise_parts import scheme_of
from relay.channels.base import ChannelSettings
from relay.confmodel import Duration

__all__ = ["AppriseSettings"]


def _usable(url: SecretStr) -> SecretStr:
    """An Apprise URL that a plugin accepts; the error names the scheme, never the URL."""
    text = url.get_secret_value().strip()
    if not text:
        raise ValueError("is empty")
    # Apprise is imported here, not with the registry: only configs that use it load it.
    from relay.channels.apprise_urls import url_problem

    problem = url_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return SecretStr(text)


AppriseUrl = Annotated[SecretStr, AfterValidator(_usable)]


class AppriseSettings(ChannelSettings):
    """``urls``: Apprise URLs (``ntfy://…``, ``matrix://…``, ``json://…``), one destination each."""

    type: Literal["apprise"]
    urls: list[AppriseUrl] = Field(min_length=1)
    timeout: Duration = 15.0
    """Seconds one send may take (Apprise's own per-request socket timeouts also apply)."""

    def destinations(self, name: str) -> list[tuple[str, ChannelSettings]]:
        """``name#1``, ``name#2``, … with one URL each (1-based, in the order of ``urls``)."""
        return [
            (f"{name}#{number}", self.model_copy(update={"urls": [url]}))
            for number, url in enumerate(self.urls, start=1)
        ]

    def schemes(self) -> list[str]:
        return [scheme_of(url.get_secret_value()) or "?" for url in self.urls]
