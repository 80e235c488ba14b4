"""Apprise channel: one Apprise URL (ntfy, Matrix, Teams, Pushover, JSON, …) per channel.

A ``type: apprise`` channel with several URLs is built as one channel per URL (``team#1``,
``team#2``, see ``AppriseSettings.destinations``), so each URL has its own deliveries.

Messages are plain text (title = the message's subject, not repeated in the body) sent through ``Apprise.async_notify``;
Apprise runs the plugin's blocking request in its own thread pool, so the loop stays free.
Apprise answers only "sent" or "not sent": a failure is retryable, a URL Apprise cannot use is
permanent. Reasons name the scheme only (``apprise json:// target failed``): every other part
of an Apprise URL may be a secret. The relay paces each URL itself (``default_rate_limit``), so
the plugin's own sleep between requests is switched off.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

import aiohttp
from apprise import Apprise, AppriseResultStatus, NotifyFormat, NotifyType

from relay.channels.apprise_parts import scheme_of
from relay.channels.apprise_settings import AppriseSettings
from relay.channels.apprise_urls import new_asset, plugin_for
from relay.channels.base import (
    Limits,
    Message,
    MessageRef,
    PermanentError,
    RetryableError,
    VerifyError,
)
from relay.channels.reach import reach
from relay.confmodel import RateLimit

__all__ = ["AppriseChannel", "title_and_body"]

_HTTP_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
"""Schemes whose host is an HTTP server of the user's: ``verify`` connects to it."""

_NOTIFY_TYPES = {
    "completed": NotifyType.SUCCESS,
    "failed": NotifyType.FAILURE,
    "partial_complete": NotifyType.WARNING,
}


def title_and_body(message: Message) -> tuple[str, str]:
    """The subject as title, and the text without its first line when that line is the title
    (the plain text starts with it; a service without titles gets it back from Apprise)."""
    title = message.subject or ""
    first, newline, rest = message.text.partition("\n")
    if title and newline and first.strip() == title.strip() and rest.strip():
        return title, rest
    return title, message.text


class AppriseChannel:
    render_kind: ClassVar[str] = "plain"
    limits: ClassVar[Limits] = Limits(text=32_768, subject=250)
    """Apprise's own defaults (``body_maxlen``, ``title_maxlen``); a plugin with smaller limits
    applies them itself (``overflow=`` in the URL chooses how)."""
    default_rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=1.0, burst=5)

    def __init__(self, name: str, settings: AppriseSettings, base_dir: Path) -> None:
        if len(settings.urls) != 1:
            raise ValueError("an Apprise channel sends to one URL: build one per destination")
        self.name = name
        self.settings = settings
        url = settings.urls[0].get_secret_value()
        self.scheme = scheme_of(url) or "?"
        self._key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
        self._apprise: Apprise | None = None
        plugin = plugin_for(url, new_asset(settings.timeout))
        if plugin is not None:
            plugin.request_rate_per_sec = 0  # the relay paces; a sleep here holds a thread
            self._apprise = Apprise(asset=plugin.asset)
            self._apprise.add(plugin)
            self._service = str(plugin.service_name)

    def __repr__(self) -> str:
        return f"AppriseChannel(name={self.name!r}, scheme={self.scheme!r})"

    @property
    def rate_key(self) -> str:
        return f"apprise:{self._key}"

    @property
    def _where(self) -> str:
        return f"apprise {self.scheme}:// target"

    async def start(self, session: aiohttp.ClientSession) -> None:
        return None  # Apprise's plugins bring their own HTTP clients

    async def close(self) -> None:
        return None

    async def verify(self) -> str:
        """Apprise accepts the URL; for a JSON/form/XML target, its host takes a connection."""
        if self._apprise is None:
            raise VerifyError(f"Apprise cannot use this {self.scheme}:// URL")
        plugin = self._apprise[0]
        if self.scheme in _HTTP_SCHEMES:
            host = str(plugin.host)
            host = f"[{host}]" if ":" in host else host
            port = f":{plugin.port}" if plugin.port else ""
            return await reach(
                f"{'https' if plugin.secure else 'http'}://{host}{port}/",
                within=self.settings.timeout,
            )
        return f"{self._service} URL accepted by Apprise; not contacted"

    async def send(self, message: Message) -> MessageRef | None:
        if self._apprise is None:
            raise PermanentError(f"Apprise cannot use this {self.scheme}:// URL")
        try:
            title, body = title_and_body(message)
            result = await self._apprise.async_notify(
                body=body,
                title=title,
                notify_type=_NOTIFY_TYPES.get(message.status, NotifyType.INFO),
                body_format=NotifyFormat.TEXT,
                timeout=self.settings.timeout,
            )
        except Exception as exc:  # Apprise reports failures in its result; this is a bug
            raise RetryableError(f"{self._where} failed ({type(exc).__name__})") from None
        with result:
            status = result.status
        if status == AppriseResultStatus.SUCCESS:
            return None
        if status == AppriseResultStatus.TIMEOUT:
            raise RetryableError(f"{self._where} timed out after {self.settings.timeout:g}s")
        raise RetryableError(f"{self._where} failed")
