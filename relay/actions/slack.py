"""Slack's interactivity endpoint: button presses arrive here, signed by Slack.

Order of checks: configured (404) -> size by ``Content-Length`` (413) -> both signature headers
(401) -> body within ``server.read_timeout`` and 64 KiB (408 / 413) -> timestamp within 5
minutes and v0 signature (401; 429 + Retry-After once the client has failed too often) ->
form-encoded (415) -> ``payload`` JSON (400). Every refusal comes before any side effect.
A ``block_actions`` press on a relay button (``ma1:…``) goes to ``Actions.accept``; the answer
is an empty 200 at once (Slack wants one within 3 s) and the work goes on in the background.
Anything else Slack sends is answered 200 and ignored.

The payload's ``response_url`` is a capability (it posts into the channel): it is used, never
logged or shown.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from relay.actions.inbound import MAX_BODY_BYTES, read_body, refuse
from relay.actions.model import BUTTON_PREFIX, Press, Presser
from relay.actions.perform import ACTIONS_KEY
from relay.admin import FailedAuthLimiter, client_address
from relay.channels.base import MessageRef, http_url
from relay.channels.slack_buttons import without_buttons
from relay.config import RelayConfig
from relay.receiver import BadPayload, error, parse_json
from relay.text import oneline

if TYPE_CHECKING:
    from slack_sdk.signature import SignatureVerifier

__all__ = [
    "MAX_AGE",
    "MAX_BODY_BYTES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SlackEndpoint",
    "SlackSurface",
    "add_slack_route",
]

log = logging.getLogger("relay.actions.slack")

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
MAX_AGE = 5 * 60
"""A request signed longer ago than this (seconds) is refused, as Slack advises."""
FORM = "application/x-www-form-urlencoded"
RESPONSE_TIMEOUT = 10.0
"""Seconds for one post to a ``response_url``."""


class SlackSurface:
    """Answers a press through its ``response_url``: privately to the presser, and by
    replacing the pressed message with its blocks minus the relay's buttons."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        response_url: str | None,
        message: dict[str, Any] | None,
    ) -> None:
        self._session = session
        self._url = response_url
        self._message = message or {}

    def __repr__(self) -> str:
        return "SlackSurface(response_url=<hidden>)"

    async def answer(self, text: str) -> None:
        await self._post(
            {"response_type": "ephemeral", "replace_original": False, "text": text}, "answer"
        )

    async def remove_buttons(self) -> None:
        body: dict[str, Any] = {
            "replace_original": True,
            "text": str(self._message.get("text") or ""),
        }
        blocks = self._message.get("blocks")
        if isinstance(blocks, list):
            body["blocks"] = without_buttons(blocks)
        await self._post(body, "take the buttons off")

    async def _post(self, body: dict[str, Any], what: str) -> None:
        """Failures are logged (without the URL), never raised: the press is done either way."""
        if self._url is None:
            log.warning("cannot %s on Slack: the press carried no response_url", what)
            return
        try:
            async with self._session.post(
                self._url, json=body, timeout=aiohttp.ClientTimeout(total=RESPONSE_TIMEOUT)
            ) as response:
                await response.read()
                if response.status != 200:
                    log.warning(
                        "cannot %s on Slack: its response_url answered HTTP %d",
                        what,
                        response.status,
                    )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("cannot %s on Slack (%s)", what, type(exc).__name__)


class SlackEndpoint:
    """The handler of ``actions.slack.path``. ``config`` is the config serving now (a reload
    may change the secret or remove the section); ``limiter`` counts bad signatures with the
    admin doors' wrong tokens; ``session`` is the relay's HTTP session once started."""

    def __init__(
        self,
        path: str,
        *,
        config: Callable[[], RelayConfig],
        limiter: FailedAuthLimiter,
        session: Callable[[], aiohttp.ClientSession | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._config = config
        self._limiter = limiter
        self._session = session
        self._clock = clock
        self._unsigned = 0
        self._unsigned_quiet_until = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        config = self._config()
        settings = config.actions.slack
        if settings is None or settings.path != self.path:
            return error(404, "not found")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        timestamps = request.headers.getall(TIMESTAMP_HEADER, [])
        signatures = request.headers.getall(SIGNATURE_HEADER, [])
        if len(timestamps) != 1 or len(signatures) != 1:
            self._log_unsigned(request, config)
            return error(401, f"one {SIGNATURE_HEADER} and one {TIMESTAMP_HEADER} header needed")
        body = await read_body(request, config.server.read_timeout)
        if isinstance(body, web.Response):
            return body
        secret = settings.signing_secret.get_secret_value()
        problem = self._check(body, timestamps[0], signatures[0], secret)
        if problem is not None:
            return self._refuse(request, config, problem)
        if request.content_type != FORM:
            return error(415, f"Content-Type must be {FORM}")
        try:
            payload = _payload(body)
        except BadPayload as exc:
            return error(400, str(exc))
        return self._dispatch(request, payload)

    def _check(self, body: bytes, timestamp: str, signature: str, secret: str) -> str | None:
        """What is wrong with the signature, or None."""
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            return "bad timestamp"
        if abs(self._clock() - int(timestamp)) > MAX_AGE:
            return "stale timestamp"
        if not signature.isascii():
            return "bad signature"
        try:  # refuses an empty secret; a body that is not UTF-8 cannot be checked
            verifier = _verifier(secret, self._clock)
            valid = verifier.is_valid(body, timestamp, signature)
        except (ValueError, TypeError):
            valid = False
        return None if valid else "bad signature"

    def _log_unsigned(self, request: web.Request, config: RelayConfig) -> None:
        """A WARNING for requests without a signature: at most one a minute, with how many
        there were (they are not counted toward the limit, like a missing admin token)."""
        self._unsigned += 1
        now = self._clock()
        if now < self._unsigned_quiet_until:
            return
        client = client_address(request, config.server.trusted_proxies)
        log.warning(
            "Slack action refused: no signature (from %s; %d such request(s) this minute)",
            client, self._unsigned,
        )  # fmt: skip
        self._unsigned, self._unsigned_quiet_until = 0, now + 60.0

    def _refuse(self, request: web.Request, config: RelayConfig, problem: str) -> web.Response:
        return refuse(
            request, config, self._limiter, log=log,
            why=f"Slack action refused: {problem}",
            answer=f"{problem} ({SIGNATURE_HEADER}, {TIMESTAMP_HEADER})",
        )  # fmt: skip

    def _dispatch(self, request: web.Request, payload: dict[str, Any]) -> web.Response:
        """Hand a press on a relay button to ``Actions``; an empty 200 either way."""
        kind = payload.get("type")
        if kind != "block_actions":
            log.debug("Slack interaction of type %r ignored", oneline(str(kind))[:40])
            return web.Response(status=200)
        value = _relay_value(payload.get("actions"))
        if value is None:
            log.debug("Slack block action without a relay button ignored")
            return web.Response(status=200)
        actions, session = request.app.get(ACTIONS_KEY), self._session()
        if actions is None or session is None:  # not started (yet)
            return error(503, "chat actions are not running; retry shortly")
        press = Press(
            value=value,
            presser=_presser(payload.get("user")),
            message=_message_ref(payload),
            surface=SlackSurface(session, _response_url(payload), _dict(payload.get("message"))),
        )
        log.debug("Slack press by %s", press.presser.user_id)
        actions.accept(press)
        return web.Response(status=200)


def add_slack_route(
    app: web.Application,
    path: str,
    *,
    config: Callable[[], RelayConfig],
    limiter: FailedAuthLimiter,
    session: Callable[[], aiohttp.ClientSession | None],
    clock: Callable[[], float] = time.time,
) -> SlackEndpoint:
    """Register Slack's interactivity endpoint at ``path`` (``actions.slack.path``) on ``app``,
    which must hold ``ACTIONS_KEY``."""
    endpoint = SlackEndpoint(path, config=config, limiter=limiter, session=session, clock=clock)
    app.router.add_post(path, endpoint.handle)
    return endpoint


def _verifier(secret: str, now: Callable[[], float]) -> SignatureVerifier:
    """slack-sdk's verifier on our clock. slack-sdk is imported here, with the first request:
    a relay that has no Slack channel does not load it (the endpoint is always imported)."""
    from slack_sdk.signature import Clock, SignatureVerifier

    class _Clock(Clock):
        def now(self) -> float:
            return now()

    return SignatureVerifier(secret, clock=_Clock())


def _payload(body: bytes) -> dict[str, Any]:
    try:
        fields = urllib.parse.parse_qs(
            body.decode("ascii"), strict_parsing=True, errors="strict", max_num_fields=20
        )
    except (UnicodeDecodeError, ValueError):
        raise BadPayload("body is not a URL-encoded form") from None
    values = fields.get("payload", [])
    if len(values) != 1:
        raise BadPayload("one 'payload' form field needed")
    payload = parse_json(values[0].encode("utf-8"))
    if not isinstance(payload, dict):
        raise BadPayload("'payload' is not a JSON object")
    return payload


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _relay_value(actions: Any) -> str | None:
    """The value of the first action that is a relay button."""
    for action in actions if isinstance(actions, list) else []:
        value = (_dict(action) or {}).get("value")
        if isinstance(value, str) and value.startswith(BUTTON_PREFIX):
            return value
    return None


def _presser(user: Any) -> Presser:
    user = _dict(user) or {}
    name = _text(user.get("username")) or _text(user.get("name"))
    return Presser(
        source="slack",
        user_id=oneline(str(user.get("id") or ""))[:64],
        name=None if name is None else oneline(name)[:80],
    )


def _message_ref(payload: dict[str, Any]) -> MessageRef | None:
    container = _dict(payload.get("container")) or {}
    channel = _text(container.get("channel_id")) or _text(
        (_dict(payload.get("channel")) or {}).get("id")
    )
    ts = _text(container.get("message_ts")) or _text(
        (_dict(payload.get("message")) or {}).get("ts")
    )
    if channel is None or ts is None:
        return None
    return MessageRef(channel_id=channel, message_id=ts)


def _response_url(payload: dict[str, Any]) -> str | None:
    url = _text(payload.get("response_url"))
    if url is None:
        return None
    try:
        return http_url(url)
    except ValueError:
        return None
