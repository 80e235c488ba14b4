"""Channel checks: each channel's credentials verified without sending a message, and one
clearly marked test message through a real channel.

``relay check --online`` runs the checks once; ``serve`` runs them in the background at start
and after every successful reload (``ChannelChecks``), logs a WARNING per failing channel, sets
``relay_channel_check_ok{channel}`` and keeps the results for the dashboard. ``relay test``
renders an event and sends it through one channel, marked, without touching the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from relay.channels import Channel, DeliveryError, Limits, Message, MessageRef
from relay.channels.base import VerifyError
from relay.config import LoadedConfig
from relay.dryrun import parse_event
from relay.metrics import Metrics
from relay.mosaic import MosaicAuthError, MosaicClient, MosaicError, RetryPolicy
from relay.mosaic.settings import MosaicSettings
from relay.render import RenderError
from relay.runtime import Runtime

__all__ = [
    "CHECK_TIMEOUT",
    "TEST_MARKER",
    "TEST_ROUTE",
    "ChannelChecks",
    "CheckResult",
    "SendOutcome",
    "check_channel",
    "check_channels",
    "check_mosaic",
    "check_online",
    "render_test",
    "report",
    "send_test",
]

log = logging.getLogger("relay.verify")

CHECK_TIMEOUT = 15.0
"""Seconds one channel's check may take before it counts as failed."""
TEST_ROUTE = "relay test"
TEST_MARKER = "[relay test] "
_HTML_MARKER = "<p>[relay test]</p>\n"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One channel's check: ``detail`` says what was confirmed, or why it failed."""

    channel: str
    type: str
    ok: bool
    detail: str
    at: float

    def line(self) -> str:
        state = f"ok ({self.detail})" if self.ok else f"FAILED: {self.detail}"
        return f"{self.channel} ({self.type}): {state}"

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _kind(channel: Channel) -> str:
    return str(getattr(getattr(channel, "settings", None), "type", "?"))


async def check_channel(name: str, channel: Channel, *, within: float) -> CheckResult:
    """Run ``channel.verify()`` for up to ``within`` seconds; every failure becomes a result."""
    ok, detail = False, ""
    try:
        async with asyncio.timeout(within):
            detail, ok = await channel.verify(), True
    except VerifyError as exc:
        detail = exc.reason
    except TimeoutError:
        detail = f"no answer within {within:g}s"
    except Exception as exc:  # a bug in a check must not stop the others; its text may hold URLs
        log.warning("channel %s: the check raised %s", name, type(exc).__name__)
        detail = f"the check failed unexpectedly ({type(exc).__name__})"
    return CheckResult(name, _kind(channel), ok, detail, time.time())


async def check_channels(
    channels: Mapping[str, Channel], *, within: float = CHECK_TIMEOUT
) -> list[CheckResult]:
    """Every (started) channel checked at once, in config order."""
    return list(
        await asyncio.gather(
            *(check_channel(name, ch, within=within) for name, ch in channels.items())
        )
    )


async def check_online(loaded: LoadedConfig, *, within: float = CHECK_TIMEOUT) -> list[CheckResult]:
    """The channels of ``loaded`` started on a session of their own, checked, closed; and the
    Mosaic API key when ``mosaic.api_key`` is set."""
    runtime = Runtime.build(loaded)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as session:
        await runtime.start(session)
        try:
            results = await check_channels(runtime.channels, within=within)
        finally:
            await runtime.close()
        if loaded.config.mosaic.api_enabled:
            results.append(await check_mosaic(loaded.config.mosaic, session, within=within))
    return results


async def check_mosaic(
    settings: MosaicSettings, session: aiohttp.ClientSession, *, within: float
) -> CheckResult:
    """``GET /whoami`` with the configured key: refused, unreachable or the organisation."""
    assert settings.api_key is not None
    client = MosaicClient(
        settings.api_key,
        base_url=settings.api_url,
        session=session,
        timeout=within,
        retry=RetryPolicy(attempts=2, budget=within),
    )
    ok, detail = False, ""
    try:
        async with asyncio.timeout(within):
            who = await client.whoami()
        ok, detail = True, f"key accepted for {who.organization_name or who.organization_id}"
    except MosaicAuthError as exc:
        detail = f"key refused: {exc.reason}"
    except MosaicError as exc:
        detail = exc.reason
    except TimeoutError:
        detail = f"no answer within {within:g}s"
    return CheckResult("mosaic", "api", ok, detail, time.time())


def report(results: list[CheckResult]) -> str:
    """The lines ``relay check --online`` prints, one per channel."""
    lines = [f"channel checks ({len(results)}):"]
    lines += [f"  {result.line()}" for result in results]
    return "\n".join(lines)


class ChannelChecks:
    """Background checks of the running channels; never delays startup or webhooks."""

    def __init__(self, metrics: Metrics, *, within: float = CHECK_TIMEOUT) -> None:
        self._metrics = metrics
        self._within = within
        self._task: asyncio.Task[None] | None = None
        self.results: list[CheckResult] = []

    def start(self, runtime: Runtime) -> None:
        """Check ``runtime``'s channels now; a check still running for an older config stops."""
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(self._run(runtime), name="relay-channel-checks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self, runtime: Runtime) -> None:
        results = await check_channels(runtime.channels, within=self._within)
        self.results = results
        self._metrics.channel_checks({r.channel: r.ok for r in results})
        for result in results:
            if not result.ok:
                log.warning(
                    "channel %s: check failed: %s",
                    result.channel,
                    result.detail,
                    extra={"channel": result.channel},
                )
        passed = sum(r.ok for r in results)
        log.info("channel checks: %d of %d passed", passed, len(results))

    def as_json(self) -> dict[str, Any]:
        """For ``GET /api/config`` and the config page."""
        return {
            "running": self.running,
            "checked_at": max((r.at for r in self.results), default=None),
            "results": [r.as_json() for r in self.results],
        }


# --- relay test --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What ``relay test`` did: ``detail`` names the sent message, or why it failed."""

    channel: str
    type: str
    ok: bool
    detail: str

    def line(self) -> str:
        if not self.ok:
            state = f"FAILED: {self.detail}"
        else:
            state = f"sent ({self.detail})" if self.detail else "sent"
        return f"{self.channel} ({self.type}): {state}"


def _room_for_marker(limits: Limits) -> Limits:
    """Limits leaving space for the marker in text, caption and subject, and for its block."""
    room = len(_HTML_MARKER)
    return dataclasses.replace(
        limits,
        text=limits.text - room,
        caption=limits.caption - room if limits.caption else None,
        subject=limits.subject - room if limits.subject else None,
        blocks=limits.blocks - 1 if limits.blocks else None,
    )


def _marked(message: Message) -> Message:
    """``message`` with ``[relay test]`` in front of its text, HTML, caption, subject, blocks."""
    blocks = message.blocks
    if blocks is not None:
        note = {"type": "context", "elements": [{"type": "mrkdwn", "text": TEST_MARKER.strip()}]}
        blocks = [note, *blocks]
    return dataclasses.replace(
        message,
        text=TEST_MARKER + message.text,
        html=_HTML_MARKER + message.html if message.html else message.html,
        caption=TEST_MARKER + message.caption if message.caption else message.caption,
        subject=TEST_MARKER + message.subject if message.subject else message.subject,
        blocks=blocks,
    )


def render_test(runtime: Runtime, channel: str, raw: bytes, *, now: float) -> Message:
    """The marked test message for ``channel`` (its own template), from an event's JSON."""
    event = parse_event(raw)
    target = runtime.channels[channel]
    message = runtime.render(
        channel,
        getattr(getattr(target, "settings", None), "template", None),
        event,
        event_id=f"relay-test-{uuid.uuid4().hex[:12]}",
        route=TEST_ROUTE,
        run_started_at=now,
        now=now,
        limits=_room_for_marker(target.limits),
    )
    return _marked(message)


async def send_test(
    loaded: LoadedConfig, channel: str, raw: bytes, *, within: float = 60.0
) -> list[SendOutcome]:
    """Render ``raw`` for each destination of ``channel`` and send it once to each, marked; no
    store, no retries. A channel has one destination, an Apprise channel one per URL
    (``team#2`` names one of them).

    ``KeyError`` for an unknown channel, ``DryRunError`` for input that is not an event.
    """
    runtime = Runtime.build(loaded)
    destinations = runtime.destinations_of(channel)
    if not destinations:
        raise KeyError(channel)
    parse_event(raw)  # input that is not an event fails before anything is sent
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as session:
        return [
            await _send_one(runtime, name, raw, session, within=within) for name in destinations
        ]


async def _send_one(
    runtime: Runtime, channel: str, raw: bytes, session: aiohttp.ClientSession, *, within: float
) -> SendOutcome:
    target = runtime.channels[channel]
    kind = _kind(target)
    try:
        message = render_test(runtime, channel, raw, now=time.time())
    except RenderError as exc:
        return SendOutcome(channel, kind, False, f"template error: {exc}")
    await target.start(session)
    try:
        async with asyncio.timeout(within):
            ref = await target.send(message)
    except DeliveryError as exc:
        return SendOutcome(channel, kind, False, exc.reason)
    except TimeoutError:
        return SendOutcome(channel, kind, False, f"no answer within {within:g}s")
    finally:
        await target.close()
    return SendOutcome(channel, kind, True, _where(ref))


def _where(ref: MessageRef | None) -> str:
    return "" if ref is None else f"message {ref.message_id} in {ref.channel_id}"
