"""Slack interactions as Slack sends them: a ``block_actions`` payload for a button press,
form-encoded as ``payload=<JSON>``, signed with the app's signing secret (v0 HMAC-SHA256 over
``v0:{timestamp}:{body}``) in ``X-Slack-Signature`` / ``X-Slack-Request-Timestamp``.

``press(fake_slack, message, "resume")`` builds the payload of a click on a button of a message
the fake holds (with a ``response_url`` of the fake for it); ``sign(payload, secret)`` the
request, or a forged, stale or unsigned one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.slack import TEAM_ID, FakeSlack, SlackMessage

__all__ = [
    "PRESSER",
    "SignedRequest",
    "block_actions",
    "button_of",
    "press",
    "sign",
    "signature",
]

PRESSER = {"id": "U024BE7LH", "username": "alice", "name": "alice", "team_id": TEAM_ID}
"""The user pressing, as Slack describes them in a payload."""
STALE_AFTER = 5 * 60
"""Slack's receivers refuse a timestamp older than this."""


@dataclass(frozen=True)
class SignedRequest:
    """What Slack POSTs to the app's Request URL."""

    body: bytes
    headers: dict[str, str]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def sign(
    payload: dict[str, Any],
    secret: str,
    *,
    forge: bool = False,
    stale: bool = False,
    unsigned: bool = False,
    clock: Callable[[], float] = time.time,
) -> SignedRequest:
    """The request Slack sends for ``payload``; ``forge`` signs with another secret, ``stale``
    dates it (and signs it, correctly) 10 seconds past the 5 minutes, ``unsigned`` leaves both
    headers out."""
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if unsigned:
        return SignedRequest(body, headers)
    timestamp = str(int(clock()) - (STALE_AFTER + 10 if stale else 0))
    key = "not-" + secret if forge else secret
    headers["X-Slack-Request-Timestamp"] = timestamp
    headers["X-Slack-Signature"] = signature(key, timestamp, body)
    return SignedRequest(body, headers)


def block_actions(
    action: dict[str, Any],
    *,
    channel: str = "C0VIDEO",
    message: dict[str, Any] | None = None,
    response_url: str = "https://hooks.slack.com/actions/T0FAKE/1/secret",
    user: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a click on ``action`` (a button element as in the
    message's blocks) in ``message`` (as the Web API shows it) in ``channel``."""
    message = message or {"type": "message", "ts": "1700000000.000100", "text": ""}
    ts = str(message["ts"])
    return {
        "type": "block_actions",
        "user": dict(user or PRESSER),
        "api_app_id": "A0FAKEAPP",
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.token_hex(8)}",
        "team": {"id": TEAM_ID, "domain": "fake-workspace"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "video-alerts"},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [{**action, "block_id": action.get("block_id", ""), "action_ts": _now_ts()}],
    }


def button_of(message: SlackMessage, action: str) -> dict[str, Any]:
    """The relay's ``action`` button (``action_id`` ``mosaic_<action>``) on ``message``, as an
    element of an ``actions`` block with that block's ``block_id``; KeyError when absent."""
    for block in message.blocks or []:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements") or []:
            if element.get("action_id") == f"mosaic_{action}":
                return {**element, "block_id": block.get("block_id", "")}
    raise KeyError(f"no {action} button on the message {message.ts}")


def press(
    slack: FakeSlack, message: SlackMessage, action: str, *, user: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The payload Slack sends when ``user`` (default ``PRESSER``) clicks the relay's ``action``
    button on ``message``, with a fresh ``response_url`` of ``slack`` for that message."""
    return block_actions(
        button_of(message, action),
        channel=message.channel,
        message=message.as_api(),
        response_url=slack.response_url(message.channel, message.ts),
        user=user,
    )


def _now_ts() -> str:
    micros = int(time.time() * 1_000_000)
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
