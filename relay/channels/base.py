"""The channel contract: a rendered ``Message`` in, a ``MessageRef`` (or None) out.

A failure raises ``RetryableError`` (try again later, maybe after ``retry_after``) or
``PermanentError`` (dead-letter now). Channels only transport; rendering happens before.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import aiohttp

from relay.confmodel import RateLimit, RateLimitSetting, StrictModel
from relay.digest.settings import QuietHoursSettings

__all__ = [
    "Button",
    "Channel",
    "ChannelSettings",
    "DeliveryError",
    "Limits",
    "Message",
    "MessageRef",
    "PermanentError",
    "RetryableError",
    "VerifyError",
    "classify_http_status",
    "http_url",
    "network_error",
    "parse_retry_after",
]


class ChannelSettings(StrictModel):
    """Keys every channel accepts; each channel type subclasses this with its own ``type``."""

    type: str
    template: str | None = None
    rate_limit: RateLimitSetting = None
    quiet_hours: QuietHoursSettings | None = None
    """Deliveries during the quiet period wait and go out as one message when it ends."""

    template_fields: ClassVar[tuple[str, ...]] = ()
    """The settings that are templates of the channel's own (a webhook's ``body``, an email's
    ``subject``): checked when the config loads and handed to the renderer by these names."""

    def templates(self) -> dict[str, str]:
        """The channel's own templates that are set, by name."""
        sources = self.model_dump(include=set(self.template_fields), exclude_none=True)
        return {name: str(source) for name, source in sources.items()}

    def destinations(self, name: str) -> list[tuple[str, ChannelSettings]]:
        """The destinations the channel ``name`` delivers to, each with its own jobs, retries,
        dead letters and rate limit: itself, or (an Apprise channel) one per URL."""
        return [(name, self)]


def http_url(value: str, example: str = "") -> str:
    """``value`` without surrounding blanks when it is an absolute http(s) URL, else
    ``ValueError`` naming ``example`` (the check of every URL setting)."""
    url = value.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL" + (f" such as {example}" if example else ""))
    return url


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits of a destination, enforced once by the renderer (truncation with '…')."""

    text: int = 40_000
    caption: int | None = None
    subject: int | None = None
    header: int | None = None
    section: int | None = None
    blocks: int | None = None


@dataclass(frozen=True, slots=True)
class Button:
    """A chat action's button under a message (``relay.actions``). ``value`` names a stored
    grant; never trust the label."""

    action: Literal["resume", "cancel", "rerun"]
    label: str
    value: str
    style: Literal["primary", "danger"] | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A notification rendered for one kind of channel.

    ``text`` is in the channel's markup: Slack mrkdwn, Telegram HTML, plain text elsewhere.
    """

    text: str
    subject: str | None = None
    html: str | None = None
    blocks: list[dict[str, Any]] | None = None
    image_url: str | None = None
    caption: str | None = None
    body: str | None = None
    """A pre-rendered request body (webhook channel's JSON body template)."""
    run_id: str = ""
    event_id: str = ""
    route: str = ""
    flag: str = ""
    status: str = ""
    agent_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    buttons: tuple[Button, ...] = ()
    """Chat actions the channel draws under the message, if it can (Slack, Telegram)."""


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a sent message lives, to edit it or reply under it later."""

    channel_id: str
    message_id: str


class DeliveryError(Exception):
    """A send failed. The text must never contain a token, password or secret URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryableError(DeliveryError):
    """Try again later; ``retry_after`` (seconds) is the destination's own wish when it gave one.

    ``rate_limited`` failures (429) do not consume ``delivery.max_attempts``.
    """

    def __init__(
        self, reason: str, *, retry_after: float | None = None, rate_limited: bool = False
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class PermanentError(DeliveryError):
    """Retrying cannot help (bad token, unknown chat, message refused)."""


class VerifyError(Exception):
    """A channel failed its check (``verify``). The text must never contain a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_retry_after(value: str | float | int | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds only; dates are treated as absent)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, 86_400.0)


def classify_http_status(
    status: int, *, retry_after: str | float | None = None, detail: str = ""
) -> DeliveryError | None:
    """The one place an HTTP status becomes a retry decision; None means success (2xx)."""
    what = f"HTTP {status}" + (f": {detail}" if detail else "")
    if 200 <= status < 300:
        return None
    if status == 429:
        return RetryableError(
            f"rate limited ({what})", retry_after=parse_retry_after(retry_after), rate_limited=True
        )
    if status >= 500 or status in (408, 425):
        return RetryableError(what, retry_after=parse_retry_after(retry_after))
    return PermanentError(what)


def network_error(exc: BaseException, where: str) -> RetryableError | None:
    """A RetryableError for a timeout or connection failure, else None.

    The reason names the exception class only: their texts may carry URLs.
    """
    if isinstance(exc, asyncio.TimeoutError | TimeoutError | aiohttp.ServerTimeoutError):
        return RetryableError(f"timed out talking to {where}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return RetryableError(f"cannot reach {where} ({type(exc).__name__})")
    return None


@runtime_checkable
class Channel(Protocol):
    """One configured destination."""

    name: str
    render_kind: ClassVar[str]
    """The render kind that writes its messages, by name (``relay.render.kinds.REGISTRY``)."""
    limits: ClassVar[Limits]
    default_rate_limit: ClassVar[RateLimit | None]

    @property
    def rate_key(self) -> str:
        """Destinations sharing a rate limit share this key (e.g. token + chat)."""
        ...

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Open clients; ``session`` is the relay's shared HTTP session."""
        ...

    async def close(self) -> None: ...

    async def send(self, message: Message) -> MessageRef | None: ...

    async def verify(self) -> str:
        """Check credentials and destination without sending a message (the channel is started).

        Returns what was confirmed, in a few words; raises ``VerifyError`` with the reason.
        """
        ...


@runtime_checkable
class RestingChannel(Protocol):
    """A channel whose destination said, on a success, that it takes no more sends for a while
    (Discord's ``X-RateLimit-Remaining: 0``): the dispatcher holds it as after a 429."""

    def resting_for(self) -> float:
        """Seconds until the destination takes a send again (0: now)."""
        ...


@runtime_checkable
class EditableChannel(Protocol):
    """A channel that can replace a message it sent (live cards)."""

    async def edit(self, ref: MessageRef, message: Message) -> None: ...


@runtime_checkable
class ThreadedChannel(Protocol):
    """A channel that can answer under a message it sent (card threads)."""

    async def reply(
        self, ref: MessageRef, message: Message, *, broadcast: bool = False
    ) -> MessageRef | None: ...
