"""Discord channel: a webhook's execute (``POST ?wait=true``), edit (``PATCH …/messages/{id}``)
and get (``verify``) endpoints, over the relay's shared aiohttp session.

Every request carries ``allowed_mentions: {"parse": []}``: no text, escaped or not, can ping.
The message's ``text`` is the content and its ``blocks`` the embeds (the ``discord`` kind).

Rate limits: a 429 raises a rate-limited ``RetryableError`` with Discord's ``retry_after`` (JSON,
fractional seconds; else the ``Retry-After`` header), which holds every send to the webhook. A
success that empties the webhook's bucket (``X-RateLimit-Remaining: 0``) makes the next send
within ``X-RateLimit-Reset-After`` refuse itself the same way, unsent, instead of earning a 429.

Discord webhooks cannot answer in a thread under a message of a normal channel, so this channel
has no ``reply``: a card's replies are not sent. The webhook URL is a secret: nothing here shows
it, and reasons name only "Discord".
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from multidict import CIMultiDict

from relay.channels.base import (
    DeliveryError,
    Limits,
    Message,
    MessageRef,
    PermanentError,
    RetryableError,
    VerifyError,
    classify_http_status,
    network_error,
    parse_retry_after,
)
from relay.channels.discord_settings import DiscordSettings, webhook_parts
from relay.channels.scrub import fingerprint, hide_in_logs
from relay.confmodel import RateLimit
from relay.text import oneline

__all__ = ["DiscordChannel", "DiscordSettings", "classify_discord_failure"]

NO_MENTIONS: dict[str, Any] = {"parse": []}
_CODES = {
    10003: "unknown channel",
    10008: "unknown message",
    10015: "unknown webhook",
    50027: "invalid webhook token",
    50035: "invalid form body",
}


class _Answer:
    """What a Discord endpoint answered: status, parsed JSON (or None), the headers we read."""

    __slots__ = ("data", "headers", "status")

    def __init__(self, status: int, data: Any, headers: Mapping[str, str]) -> None:
        self.status = status
        self.data = data
        self.headers = headers


def _first_error(errors: Any, path: str = "") -> str:
    """``embeds.0.title: Must be 256 or fewer in length.`` from Discord's nested ``errors``."""
    if not isinstance(errors, dict):
        return ""
    listed = errors.get("_errors")
    if isinstance(listed, list) and listed and isinstance(listed[0], dict):
        return f"{path}: {listed[0].get('message') or listed[0].get('code') or '?'}"
    for key, value in errors.items():
        found = _first_error(value, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return ""


def classify_discord_failure(answer: _Answer) -> DeliveryError:
    """The retry decision for a non-2xx answer; the reason quotes Discord's code and message."""
    data = answer.data if isinstance(answer.data, dict) else {}
    code = data.get("code") if isinstance(data.get("code"), int) else None
    text = oneline(str(data.get("message") or ""))[:200] or _CODES.get(code or 0, "")
    detail = _first_error(data.get("errors"))
    label = "Discord" + (f" error {code}" if code is not None else "")
    label += f": {text}" if text else ""
    label += f" ({oneline(detail)[:200]})" if detail else ""
    if answer.status == 429:
        retry_after = parse_retry_after(data.get("retry_after"))
        if retry_after is None:
            retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        scope = "global rate limit" if data.get("global") else "rate limited"
        return RetryableError(
            f"{label} ({scope}, HTTP 429)", retry_after=retry_after, rate_limited=True
        )
    decided = classify_http_status(
        answer.status, retry_after=answer.headers.get("Retry-After"), detail=label
    )
    return decided or PermanentError(f"{label} (HTTP {answer.status})")


class DiscordChannel:
    render_kind: ClassVar[str] = "discord"
    limits: ClassVar[Limits] = Limits(text=2000, header=256, section=4096, blocks=10)
    default_rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=0.5, burst=5)
    """Discord allows a webhook about 5 requests per 2 s, and a channel 30 messages a minute."""

    def __init__(self, name: str, settings: DiscordSettings, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self._url = settings.webhook_url.get_secret_value()
        self._id, self._token = webhook_parts(self._url) or ("", "")
        hide_in_logs(self._url, self._token)
        self._session: aiohttp.ClientSession | None = None
        self._rest_until = 0.0

    def __repr__(self) -> str:
        return f"DiscordChannel(name={self.name!r})"

    @property
    def rate_key(self) -> str:
        return f"discord:{fingerprint(self._url)}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def close(self) -> None:
        self._session = None

    def resting_for(self) -> float:
        """Seconds until the webhook's rate-limit bucket, emptied by the last send, refills."""
        return max(0.0, self._rest_until - time.monotonic())

    async def send(self, message: Message) -> MessageRef | None:
        answer = await self._request("POST", "", self._payload(message), wait=True)
        if answer.status == 204:
            return None
        data = answer.data if isinstance(answer.data, dict) else {}
        if not data.get("id"):
            raise PermanentError("Discord accepted the message but answered without its 'id'")
        return MessageRef(channel_id=self._id, message_id=str(data["id"]))

    async def edit(self, ref: MessageRef, message: Message) -> None:
        """Replace a message this webhook posted (live cards)."""
        payload = self._payload(message)
        payload.setdefault("embeds", [])  # an edit without embeds removes the old ones
        payload.pop("username", None)
        payload.pop("avatar_url", None)
        await self._request("PATCH", f"/messages/{ref.message_id}", payload)

    async def verify(self) -> str:
        """Get the webhook (nothing is posted): it exists and the token is right."""
        try:
            answer = await self._request("GET", "", None)
        except DeliveryError as exc:
            raise VerifyError(exc.reason) from None
        data = answer.data if isinstance(answer.data, dict) else {}
        name = oneline(str(data.get("name") or "?"))[:80]
        channel = oneline(str(data.get("channel_id") or "?"))[:40]
        return f"webhook '{name}' in channel {channel}"

    def _payload(self, message: Message) -> dict[str, Any]:
        payload: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
        embeds = [block for block in message.blocks or () if block.get("type", "rich") == "rich"]
        if message.text or not embeds:
            payload["content"] = message.text
        if embeds:
            payload["embeds"] = embeds
        if self.settings.username:
            payload["username"] = self.settings.username
        if self.settings.avatar_url:
            payload["avatar_url"] = self.settings.avatar_url
        return payload

    async def _request(
        self, method: str, path: str, payload: dict[str, Any] | None, *, wait: bool = False
    ) -> _Answer:
        if self._session is None:
            raise RuntimeError(f"channel {self.name!r} is not started")
        rest = self.resting_for()
        if payload is not None and rest > 0:
            raise RetryableError(
                "Discord: the webhook's rate limit is used up until it resets",
                retry_after=rest,
                rate_limited=True,
            )
        params: dict[str, str] = {"wait": "true"} if wait else {}
        if self.settings.thread_id and method != "GET":
            params["thread_id"] = str(self.settings.thread_id)
        body = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        try:
            async with self._session.request(
                method,
                self._url + path,
                params=params,
                data=body,
                headers={"Content-Type": "application/json"} if body is not None else None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            ) as response:
                raw = await response.read()
                answer = _Answer(response.status, _json(raw), CIMultiDict(response.headers))
        except Exception as exc:
            retryable = network_error(exc, "Discord")
            if retryable is not None:
                raise retryable from None
            raise PermanentError(f"cannot send to Discord ({type(exc).__name__})") from None
        if not 200 <= answer.status < 300:
            raise classify_discord_failure(answer)
        self._note_bucket(answer.headers)
        return answer

    def _note_bucket(self, headers: Mapping[str, str]) -> None:
        """A success that left the bucket empty: rest until Discord says it resets."""
        if headers.get("X-RateLimit-Remaining", "").strip() != "0":
            return
        reset_after = parse_retry_after(headers.get("X-RateLimit-Reset-After"))
        if reset_after:
            self._rest_until = time.monotonic() + reset_after


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
