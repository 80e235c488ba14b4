"""Webhook channel: POST a JSON body to any HTTP endpoint.

The body is ``message.body`` when the channel (or route) has a ``body`` template, else
``{"text", "subject", "event_id", "run_id", "agent_id", "flag", "status", "route"}``.

With a ``secret``, each request carries ``X-Relay-Signature: sha256=<hex>``, the HMAC-SHA256 of
the exact body bytes keyed with the secret (compare it in constant time on the receiving side).
``X-Relay-Event-Id`` carries the event id so a receiver can drop a redelivery.

The URL and the header values are treated as secrets (they often hold tokens): reasons and reprs
name the host only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from pathlib import Path
from typing import ClassVar, Literal

import aiohttp
from pydantic import Field, SecretStr, field_validator

from relay.channels.base import (
    ChannelSettings,
    Limits,
    Message,
    MessageRef,
    PermanentError,
    classify_http_status,
    http_url,
    network_error,
)
from relay.channels.reach import reach
from relay.channels.scrub import fingerprint
from relay.confmodel import Duration, RateLimit

__all__ = ["SIGNATURE_HEADER", "WebhookChannel", "WebhookSettings", "body_for", "sign"]

SIGNATURE_HEADER = "X-Relay-Signature"
EVENT_ID_HEADER = "X-Relay-Event-Id"
_RESERVED = {"content-type", "content-length", "host", SIGNATURE_HEADER.lower()}


class WebhookSettings(ChannelSettings):
    type: Literal["webhook"]
    url: SecretStr
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    secret: SecretStr | None = None
    body: str | None = None
    """A Jinja template for the JSON body; the renderer uses it, the channel sends message.body."""
    timeout: Duration = 10.0

    template_fields: ClassVar[tuple[str, ...]] = ("body",)

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        return SecretStr(http_url(value.get_secret_value()))

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, header in value.items():
            if not name or any(ch in name for ch in " :\r\n\t") or name.lower() in _RESERVED:
                raise ValueError(f"{name!r} cannot be set as a header here")
            if any(ch in header.get_secret_value() for ch in "\r\n"):
                raise ValueError(f"the value of {name!r} contains a line break")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("is empty (leave it out to send unsigned requests)")
        return value

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url.get_secret_value()).hostname or "?"


def sign(secret: str, body: bytes) -> str:
    """The ``X-Relay-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def body_for(message: Message) -> bytes:
    if message.body is not None:
        return message.body.encode("utf-8")
    document = {
        "text": message.text,
        "subject": message.subject,
        "event_id": message.event_id,
        "run_id": message.run_id,
        "agent_id": message.agent_id,
        "flag": message.flag,
        "status": message.status,
        "route": message.route,
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


class WebhookChannel:
    render_kind: ClassVar[str] = "webhook"
    limits: ClassVar[Limits] = Limits(text=40_000)
    default_rate_limit: ClassVar[RateLimit | None] = None

    def __init__(self, name: str, settings: WebhookSettings, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self._url = settings.url.get_secret_value()
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"WebhookChannel(name={self.name!r}, host={self.settings.host!r})"

    @property
    def rate_key(self) -> str:
        return f"webhook:{fingerprint(self._url)}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def close(self) -> None:
        self._session = None

    async def verify(self) -> str:
        """The URL's host resolves and accepts a connection (and TLS for https); no request."""
        return await reach(self._url, within=self.settings.timeout)

    async def send(self, message: Message) -> MessageRef | None:
        if self._session is None:
            raise RuntimeError(f"channel {self.name!r} is not started")
        body = body_for(message)
        headers = {name: value.get_secret_value() for name, value in self.settings.headers.items()}
        headers["Content-Type"] = "application/json; charset=utf-8"
        if message.event_id:
            headers[EVENT_ID_HEADER] = message.event_id
        if self.settings.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.settings.secret.get_secret_value(), body)
        where = f"webhook host {self.settings.host}"
        try:
            async with self._session.post(
                self._url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            ) as response:
                await response.read()
                status, reason = response.status, (response.reason or "")[:80]
                retry_after = response.headers.get("Retry-After")
        except Exception as exc:
            retryable = network_error(exc, where)
            if retryable is not None:
                raise retryable from None
            raise PermanentError(f"cannot send to {where} ({type(exc).__name__})") from None
        failure = classify_http_status(status, retry_after=retry_after, detail=f"{where} {reason}")
        if failure is not None:
            raise failure
        return None
