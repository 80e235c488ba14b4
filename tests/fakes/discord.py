"""A strict local fake of Discord's webhook API: execute (``POST /api/webhooks/{id}/{token}``,
``?wait=true``, ``?thread_id=``), edit (``PATCH …/messages/{message_id}``) and get (``GET``).

Stricter than Discord where that catches relay bugs: every execute and edit must carry
``allowed_mentions`` (the relay promises no text can ping), unknown top-level keys are refused,
and URLs in embeds must be http(s). Limits as Discord enforces them (characters): content 2,000;
10 embeds; title 256, description 4,096, 25 fields of name 256 / value 1,024, footer 2,048,
author 256, and 6,000 across the embeds of a message. A violation answers 400 with Discord's
``{"code": 50035, "message": "Invalid Form Body", "errors": {…}}``. A wrong token answers 401
(50027), an unknown webhook 404 (10015), an unknown message 404 (10008).

Rate limits are scripted: ``fail_next(status=429, retry_after=1.5)`` answers like Discord
(JSON ``retry_after`` in fractional seconds, ``Retry-After`` and ``X-RateLimit-*`` headers), and
``empty_bucket_next(reset_after)`` makes the next success say ``X-RateLimit-Remaining: 0``; a
request before that reset gets a 429. Run by hand: ``python -m tests.fakes.discord --port 8102``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes._server import (
    REDACTED,
    BodyError,
    Call,
    FakeServer,
    Fault,
    Incoming,
    cli_parser,
    print_call,
    read_params,
    run,
    serve_forever,
)

__all__ = ["DEFAULT_TOKEN", "DEFAULT_WEBHOOK_ID", "DiscordMessage", "FakeDiscord", "hazards"]

DEFAULT_WEBHOOK_ID = "1234567890123456789"
DEFAULT_TOKEN = "fake-Discord_webhook-TOKEN-0123456789abcdef"
CHANNEL_ID = "9876543210987654321"
GUILD_ID = "1111111111111111111"
BUCKET = "fake0bucket0hash"
LIMITS = {"content": 2000, "title": 256, "description": 4096, "footer": 2048, "author": 256}
FIELD_NAME, FIELD_VALUE, MAX_FIELDS, MAX_EMBEDS, EMBEDS_TOTAL = 256, 1024, 25, 10, 6000
_KEYS = frozenset(
    {"content", "username", "avatar_url", "tts", "embeds", "allowed_mentions", "flags",
     "thread_name", "applied_tags", "components", "attachments", "poll"}
)  # fmt: skip
_EDIT_KEYS = _KEYS - {"username", "avatar_url", "tts", "thread_name", "applied_tags"}
"""An edit cannot change who sent the message."""
_PATH = re.compile(r"^/api(?:/v\d+)?/webhooks/(?P<id>[^/]+)/(?P<token>[^/]+)(?P<rest>/.*)?$")
_MESSAGE = re.compile(r"^/messages/(?P<mid>[^/]+)$")
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_HAZARDS = re.compile(
    r"@everyone|@here|<[@#:a]|<t:|\]\(|\*|_|~~|\|\||`|^\s*(?:#|>|-|\d+\.)", re.MULTILINE
)


def hazards(text: str) -> list[str]:
    """The Discord markdown in ``text`` that would format, link or mention: every construct left
    after backslash escapes are taken out (bare URLs are allowed: they only link)."""
    bare = _ESCAPE.sub("\x00", text)
    bare = re.sub(r"https?://[^\s<>|`\[\]\"\\*~]+", "URL", bare)
    return [found.group() for found in _HAZARDS.finditer(bare)]


@dataclass(frozen=True)
class DiscordVersion:
    content: str
    embeds: list[dict[str, Any]]


@dataclass
class DiscordMessage:
    """A posted message as it is now; ``history`` holds the versions before each edit."""

    id: str
    webhook_id: str
    content: str
    embeds: list[dict[str, Any]]
    allowed_mentions: Any
    username: str | None
    thread_id: str | None
    history: list[DiscordVersion] = field(default_factory=list)

    @property
    def edited(self) -> bool:
        return bool(self.history)

    def as_api(self, channel_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": 0,
            "content": self.content,
            "channel_id": self.thread_id or channel_id,
            "webhook_id": self.webhook_id,
            "author": {"id": self.webhook_id, "username": self.username or "Relay", "bot": True},
            "embeds": self.embeds,
            "attachments": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": "2026-01-01T00:00:00.000000+00:00",
            "edited_timestamp": "2026-01-01T00:00:01.000000+00:00" if self.history else None,
            "flags": 0,
        }


@dataclass
class _DiscordFault(Fault):
    seconds: float | None = None
    is_global: bool = False


class _Refused(Exception):
    def __init__(self, status: int, code: int, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors


def _invalid(path: str, message: str, code: str = "BASE_TYPE_BAD_LENGTH") -> _Refused:
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path.split(".")):
        errors = {key: errors}
    return _Refused(400, 50035, "Invalid Form Body", errors)


def _check_text(value: Any, path: str, limit: int) -> int:
    if value is None:
        return 0
    if not isinstance(value, str):
        raise _invalid(path, "Must be a string.", "STRING_TYPE_CONVERT")
    if len(value) > limit:
        raise _invalid(path, f"Must be {limit} or fewer in length.")
    return len(value)


def _check_url(value: Any, path: str) -> None:
    if value is not None and not (isinstance(value, str) and re.match(r"^https?://[^\s/]+", value)):
        raise _invalid(path, "Not a well formed URL.", "URL_TYPE_INVALID_URL")


def _check_embed(embed: Any, path: str) -> int:
    """Checks one embed; returns the characters it counts towards the 6,000."""
    if not isinstance(embed, dict):
        raise _invalid(path, "Must be an object.", "MODEL_TYPE_CONVERT")
    if embed.get("type", "rich") != "rich":
        raise _invalid(f"{path}.type", "Webhooks can only send rich embeds.", "EMBED_TYPE")
    used = _check_text(embed.get("title"), f"{path}.title", LIMITS["title"])
    used += _check_text(embed.get("description"), f"{path}.description", LIMITS["description"])
    color = embed.get("color")
    if color is not None and (not isinstance(color, int) or not 0 <= color <= 0xFFFFFF):
        raise _invalid(f"{path}.color", "Not a valid colour.", "COLOR_INVALID")
    _check_url(embed.get("url"), f"{path}.url")
    for part in ("thumbnail", "image"):
        if part in embed:
            _check_url((embed[part] or {}).get("url"), f"{path}.{part}.url")
    if "footer" in embed:
        used += _check_text(embed["footer"].get("text"), f"{path}.footer.text", LIMITS["footer"])
    if "author" in embed:
        used += _check_text(embed["author"].get("name"), f"{path}.author.name", LIMITS["author"])
    fields = embed.get("fields") or []
    if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
        raise _invalid(f"{path}.fields", f"Must be {MAX_FIELDS} or fewer in length.")
    for i, item in enumerate(fields):
        where = f"{path}.fields.{i}"
        for key, limit in (("name", FIELD_NAME), ("value", FIELD_VALUE)):
            value = item.get(key) if isinstance(item, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise _invalid(f"{where}.{key}", "This field is required", "BASE_TYPE_REQUIRED")
            used += _check_text(value, f"{where}.{key}", limit)
    return used


def check_payload(body: Mapping[str, Any], *, creating: bool) -> None:
    """Raises ``_Refused`` when Discord (or this stricter fake) would refuse ``body``."""
    unknown = sorted(set(body) - (_KEYS if creating else _EDIT_KEYS))
    if unknown:
        raise _invalid(unknown[0], "Unknown field.", "UNKNOWN_FIELD")
    mentions = body.get("allowed_mentions")
    if not isinstance(mentions, dict) or not isinstance(mentions.get("parse", []), list):
        raise _invalid("allowed_mentions", "Required (this fake insists).", "BASE_TYPE_REQUIRED")
    if set(mentions.get("parse", [])) - {"users", "roles", "everyone"}:
        raise _invalid("allowed_mentions.parse", "Not a valid mention type.", "ENUM_TYPE_COERCE")
    _check_text(body.get("content"), "content", LIMITS["content"])
    embeds = body.get("embeds")
    if embeds is not None:
        if not isinstance(embeds, list) or len(embeds) > MAX_EMBEDS:
            raise _invalid("embeds", f"Must be {MAX_EMBEDS} or fewer in length.")
        total = sum(_check_embed(embed, f"embeds.{i}") for i, embed in enumerate(embeds))
        if total > EMBEDS_TOTAL:
            raise _invalid("embeds", f"Embed size exceeds maximum size of {EMBEDS_TOTAL}")
    for key in ("avatar_url",):
        _check_url(body.get(key), key)
    if creating and not body.get("content") and not embeds:
        raise _Refused(400, 50006, "Cannot send an empty message")


class FakeDiscord(FakeServer):
    """Fake Discord; ``webhooks`` maps webhook ids to tokens. Method names in the call log and for
    faults: ``execute``, ``edit``, ``get_webhook`` (``unknown`` for any other path)."""

    def __init__(
        self,
        *,
        webhooks: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_call: Callable[[Call], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(host=host, port=port, on_call=on_call)
        self.webhooks = dict(webhooks or {DEFAULT_WEBHOOK_ID: DEFAULT_TOKEN})
        self._clock = clock
        self._messages: list[DiscordMessage] = []
        self._next_id = 1_300_000_000_000_000_000
        self._empty_next: float | None = None
        self._resets_at: dict[str, float] = {}

    def webhook_url(self, webhook_id: str = DEFAULT_WEBHOOK_ID, token: str | None = None) -> str:
        return f"{self.url}/api/webhooks/{webhook_id}/{token or self.webhooks[webhook_id]}"

    def messages(self, webhook_id: str | None = None) -> list[DiscordMessage]:
        """Messages in post order (of one webhook, or all)."""
        return [m for m in self._messages if webhook_id in (None, m.webhook_id)]

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        retry_after: float = 1.5,
        method: str | None = None,
        is_global: bool = False,
    ) -> None:
        """Answer the next ``n`` calls (to ``method``) with ``status``; a 429 says
        ``retry_after`` seconds (JSON, fractional) and sends Discord's headers."""
        self._queue_fault(
            _DiscordFault(n, status, method, seconds=retry_after, is_global=is_global)
        )

    def empty_bucket_next(self, reset_after: float) -> None:
        """The next success says its bucket is empty for ``reset_after`` seconds; a request to
        that webhook before then is answered 429."""
        self._empty_next = reset_after

    async def _parse(self, request: web.Request) -> Incoming:
        found = _PATH.match(request.path)
        if found is None:
            return Incoming("unknown", request.path, {})
        rest = found["rest"] or ""
        method = {"POST": "execute", "GET": "get_webhook"}.get(request.method, "unknown")
        if rest and _MESSAGE.match(rest):
            method = "edit" if request.method == "PATCH" else "unknown"
        elif rest:
            method = "unknown"
        path = f"/api/webhooks/{found['id']}/{REDACTED}{rest}"
        try:
            body = await read_params(request)
        except BodyError as exc:
            return Incoming(method, path, {}, exc.code)
        return Incoming(method, path, body)

    async def _handle(self, incoming: Incoming, request: web.Request) -> web.StreamResponse:
        found = _PATH.match(request.path)
        try:
            if found is None or incoming.method == "unknown":
                raise _Refused(404, 0, "404: Not Found")
            webhook_id = found["id"]
            if webhook_id not in self.webhooks:
                raise _Refused(404, 10015, "Unknown Webhook")
            if found["token"] != self.webhooks[webhook_id]:
                raise _Refused(401, 50027, "Invalid Webhook Token")
            if incoming.error is not None or "_raw" in incoming.body:
                raise _Refused(400, 50109, "The request body contains invalid JSON.")
            if incoming.method == "get_webhook":
                return web.json_response(self._webhook(webhook_id))
            limited = self._limited(webhook_id)
            if limited is not None:
                return limited
            body = {k: v for k, v in incoming.body.items() if k not in ("wait", "thread_id")}
            thread = request.query.get("thread_id")
            if thread is not None and not thread.isdigit():
                raise _invalid("thread_id", "Value is not snowflake.", "NUMBER_TYPE_COERCE")
            if incoming.method == "execute":
                check_payload(body, creating=True)
                message = self._post(webhook_id, body, thread)
                if request.query.get("wait") != "true":
                    return web.Response(status=204, headers=self._bucket(webhook_id))
            else:
                check_payload(body, creating=False)
                mid = _MESSAGE.match(found["rest"] or "")
                assert mid is not None
                message = self._edit(webhook_id, mid["mid"], body)
            answer = message.as_api(CHANNEL_ID)
            return web.json_response(answer, headers=self._bucket(webhook_id))
        except _Refused as exc:
            error: dict[str, Any] = {"message": exc.message, "code": exc.code}
            if exc.errors is not None:
                error["errors"] = exc.errors
            return web.json_response(error, status=exc.status)

    def _webhook(self, webhook_id: str) -> dict[str, Any]:
        return {
            "id": webhook_id,
            "type": 1,
            "name": "Video alerts",
            "avatar": None,
            "channel_id": CHANNEL_ID,
            "guild_id": GUILD_ID,
            "application_id": None,
        }

    def _post(self, webhook_id: str, body: dict[str, Any], thread: str | None) -> DiscordMessage:
        self._next_id += 1
        message = DiscordMessage(
            id=str(self._next_id),
            webhook_id=webhook_id,
            content=body.get("content") or "",
            embeds=list(body.get("embeds") or []),
            allowed_mentions=body.get("allowed_mentions"),
            username=body.get("username"),
            thread_id=thread,
        )
        self._messages.append(message)
        return message

    def _edit(self, webhook_id: str, mid: str, body: dict[str, Any]) -> DiscordMessage:
        message = next(
            (m for m in self._messages if m.id == mid and m.webhook_id == webhook_id), None
        )
        if message is None:
            raise _Refused(404, 10008, "Unknown Message")
        message.history.append(DiscordVersion(message.content, message.embeds))
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        message.allowed_mentions = body.get("allowed_mentions")
        return message

    def _limited(self, webhook_id: str) -> web.Response | None:
        """A 429 while the webhook's bucket is empty (``empty_bucket_next``)."""
        left = self._resets_at.get(webhook_id, 0.0) - self._clock()
        if left <= 0:
            return None
        return _rate_limited(left, is_global=False)

    def _bucket(self, webhook_id: str) -> dict[str, str]:
        remaining, reset_after = "4", "2.000"
        if self._empty_next is not None:
            remaining, reset_after = "0", f"{self._empty_next:.3f}"
            self._resets_at[webhook_id] = self._clock() + self._empty_next
            self._empty_next = None
        return {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": remaining,
            "X-RateLimit-Reset-After": reset_after,
            "X-RateLimit-Bucket": BUCKET,
        }

    def _fault_response(self, fault: Fault, incoming: Incoming) -> web.Response:
        seconds = fault.seconds if isinstance(fault, _DiscordFault) else None
        if fault.status == 429:
            is_global = isinstance(fault, _DiscordFault) and fault.is_global
            return _rate_limited(seconds if seconds is not None else 1.0, is_global=is_global)
        return web.json_response(
            {"message": f"{fault.status}: {fault.error or 'Server Error'}", "code": 0},
            status=fault.status,
        )


def _rate_limited(seconds: float, *, is_global: bool) -> web.Response:
    headers = {
        "Retry-After": str(math.ceil(seconds)),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": f"{seconds:.3f}",
        "X-RateLimit-Bucket": BUCKET,
        "X-RateLimit-Scope": "global" if is_global else "user",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": seconds, "global": is_global}
    return web.json_response(body, status=429, headers=headers)


async def _main() -> None:
    parser = cli_parser("A fake Discord webhook API for trying the relay by hand.")
    args = parser.parse_args()
    discord = FakeDiscord(host=args.host, port=args.port, on_call=print_call)

    def describe() -> list[str]:
        return [f"fake discord listening on {discord.url}", f"webhook_url: {discord.webhook_url()}"]

    await serve_forever(discord, describe)


if __name__ == "__main__":
    run(_main)
