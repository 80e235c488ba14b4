"""A strict local fake of the Slack Web API (chat.postMessage, chat.update, auth.test,
conversations.info, conversations.list), incoming webhooks and interactions' response URLs,
shaped after what slack-sdk's AsyncWebClient / AsyncWebhookClient send.

Each token has scopes, sent back in ``X-OAuth-Scopes`` like Slack does; a method needing one the
token lacks answers ``missing_scope`` with ``needed`` and ``provided``. A bot holding
``chat:write.public`` may post in a public channel it is not a member of.

Stricter than Slack where that catches relay bugs: ``chat.update`` needs the channel *ID* (as
returned by the post), and ``thread_ts`` must be a string like ``"1700000000.000100"``.
A ``thread_ts`` naming no known message is accepted like Slack does, but the reply is marked
``orphan`` (Slack hides it). Buttons in ``actions`` blocks are checked field by field.
``response_url()`` makes the URL an interaction payload carries; what is posted to it lands in
``responses`` (and replaces the message with ``replace_original``).
Run by hand: ``python -m tests.fakes.slack --port 8101``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable, Collection, Mapping
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

__all__ = ["FakeSlack", "SlackMessage", "SlackResponse", "SlackVersion", "check_blocks"]

DEFAULT_TOKEN = "xoxb-test-token"
DEFAULT_CHANNELS = {"#video-alerts": "C0VIDEO"}
DEFAULT_SCOPES = frozenset({"chat:write", "channels:read", "groups:read"})
TEAM_ID = "T0FAKE"
BOT_USER_ID = "U0FAKEBOT"
BOT_ID = "B0FAKEBOT"
MAX_TEXT = 40_000
MAX_BLOCKS = 50
_TS = re.compile(r"^\d+\.\d{6}$")
_NEEDED = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "conversations.info": "channels:read",
    "conversations.list": "channels:read",
}
"""The scope each method needs (auth.test needs none)."""
CREATED = 1_700_000_000
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60
_RESPONSE_FLAGS = ("replace_original", "delete_original")
MAX_ELEMENTS = 25
"""Elements of one ``actions`` block."""
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_VALUE = 2000
"""A button's ``value``."""
MAX_BUTTON_TEXT = 75
_BUTTON_FIELDS = frozenset(
    {"type", "text", "action_id", "value", "style", "url", "confirm", "accessibility_label"}
)
_ACTION_ELEMENTS = frozenset(
    {
        "button", "checkboxes", "datepicker", "datetimepicker", "multi_static_select",
        "multi_users_select", "overflow", "radio_buttons", "static_select", "timepicker",
        "users_select", "conversations_select", "channels_select", "external_select",
    }
)  # fmt: skip
_KNOWN_BLOCKS = {
    "actions", "context", "divider", "file", "header", "image", "input",
    "markdown", "rich_text", "section", "table", "video",
}  # fmt: skip


@dataclass(frozen=True)
class SlackVersion:
    text: str
    blocks: list[dict[str, Any]] | None
    attachments: list[Any] | None


@dataclass
class SlackMessage:
    """Current state of a posted message; ``history`` holds the versions before each update."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    attachments: list[Any] | None
    params: dict[str, Any]
    thread_ts: str | None = None
    reply_broadcast: bool = False
    via_webhook: bool = False
    orphan: bool = False
    history: list[SlackVersion] = field(default_factory=list)

    @property
    def edited(self) -> bool:
        return bool(self.history)

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "text": self.text,
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "team": TEAM_ID,
            "ts": self.ts,
        }
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.attachments is not None:
            out["attachments"] = self.attachments
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
            out["parent_user_id"] = BOT_USER_ID
        if self.history:
            out["edited"] = {"user": BOT_USER_ID, "ts": self.ts}
        return out


@dataclass(frozen=True)
class SlackResponse:
    """One post to a ``response_url``: ``channel`` and ``ts`` name the message the URL was
    made for (None: none)."""

    channel: str | None
    ts: str | None
    body: dict[str, Any]

    @property
    def replaced(self) -> bool:
        return self.body.get("replace_original") is True

    @property
    def ephemeral(self) -> bool:
        """A new message only the presser sees (neither a replacement nor ``in_channel``)."""
        return not self.replaced and self.body.get("response_type") != "in_channel"


@dataclass
class _ResponseUrl:
    channel: str | None
    ts: str | None
    created: float
    uses: int = 0


class SlackError(Exception):
    def __init__(self, code: str, messages: list[str] | None = None, **extra: str) -> None:
        super().__init__(code)
        self.code = code
        self.messages = messages or []
        self.extra = extra


class FakeSlack(FakeServer):
    """Fake Slack. ``channels`` maps names to IDs; the bot is no member of ``not_member``;
    channels in ``archived`` are archived; ``scopes`` maps a token to its scopes (default
    ``DEFAULT_SCOPES``); ``webhooks`` maps webhook paths (after ``/services/``) to channels
    (default: one per channel).
    ``ts`` values come from ``clock`` but stay unique and increasing when it stalls.
    Only the ``Authorization`` header authenticates; a ``token`` body field is masked in the log.
    """

    secret_fields = frozenset({"token"})

    def __init__(
        self,
        *,
        tokens: Collection[str] = (DEFAULT_TOKEN,),
        channels: Mapping[str, str] = DEFAULT_CHANNELS,
        not_member: Collection[str] = (),
        archived: Collection[str] = (),
        scopes: Mapping[str, Collection[str]] | None = None,
        webhooks: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_call: Callable[[Call], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(host=host, port=port, on_call=on_call)
        self.tokens = set(tokens)
        self.scopes = {token: set(granted) for token, granted in (scopes or {}).items()}
        """Scopes of the tokens that do not have ``DEFAULT_SCOPES``."""
        self._clock = clock
        self._by_name = {name.lstrip("#"): cid for name, cid in channels.items()}
        self._names = {cid: name for name, cid in self._by_name.items()}
        self._ids = set(channels.values())
        self._messages: dict[str, list[SlackMessage]] = {cid: [] for cid in self._ids}
        self.not_member = {self._channel_id(c) for c in not_member}
        self.archived = {self._channel_id(c) for c in archived}
        if webhooks is None:
            webhooks = {
                f"{TEAM_ID}/B{i:07d}/{secrets.token_hex(12)}": cid
                for i, cid in enumerate(sorted(self._ids))
            }
        self._webhooks = {path: self._channel_id(ch) for path, ch in webhooks.items()}
        self._last_ts_us = 0
        self._response_urls: dict[str, _ResponseUrl] = {}
        self.responses: list[SlackResponse] = []
        """What was posted to the ``response_url``s, in order (refused posts not included)."""
        self._api: dict[str, Callable[[dict[str, Any], set[str]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
        }

    @property
    def api_url(self) -> str:
        """The ``base_url`` for AsyncWebClient (ends with a slash)."""
        return f"{self.url}/api/"

    def webhook_url(self, channel: str | None = None) -> str:
        """The incoming-webhook URL posting to ``channel`` (default: the first webhook)."""
        cid = None if channel is None else self._channel_id(channel)
        for path, hook_channel in self._webhooks.items():
            if cid is None or hook_channel == cid:
                return f"{self.url}/services/{path}"
        raise KeyError(f"no webhook for channel {channel!r}")

    def response_url(self, channel: str | None = None, ts: str | None = None) -> str:
        """A new ``response_url`` like those in Slack's interaction payloads, for the message
        ``ts`` in ``channel`` (a post with ``replace_original`` replaces it). Like Slack's, it
        works ``RESPONSE_URL_USES`` times within ``RESPONSE_URL_TTL`` seconds."""
        cid = None if channel is None else self._channel_id(channel)
        if ts is not None and (cid is None or self._find(cid, ts) is None):
            raise KeyError(f"no message {ts!r} in channel {channel!r}")
        path = f"{TEAM_ID}/{secrets.randbelow(10**12):012d}/{secrets.token_urlsafe(18)}"
        self._response_urls[path] = _ResponseUrl(cid, ts, self._clock())
        return f"{self.url}/actions/{path}"

    def messages(self, channel: str) -> list[SlackMessage]:
        """Messages of a channel (name or ID) in post order, thread replies included."""
        return list(self._messages[self._channel_id(channel)])

    def replies(self, channel: str, thread_ts: str) -> list[SlackMessage]:
        return [m for m in self.messages(channel) if m.thread_ts == thread_ts]

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        retry_after: int | None = 2,
        method: str | None = None,
    ) -> None:
        """Answer the next ``n`` calls (to ``method``, e.g. ``"chat.update"`` or ``"webhook"``)
        with HTTP ``status``: 429 carries ``Retry-After`` and ``ratelimited``."""
        self._queue_fault(Fault(n, status, method, retry_after if status == 429 else None))

    def error_next(self, error: str, n: int = 1, *, method: str | None = None) -> None:
        """Answer the next ``n`` Web API calls with HTTP 200 ``{"ok": false, "error": error}``."""
        self._queue_fault(Fault(n, 200, method, error=error))

    def _channel_id(self, ref: str) -> str:
        cid = self._resolve(ref)
        if cid is None:
            raise KeyError(f"unknown channel {ref!r}")
        return cid

    def _resolve(self, ref: str) -> str | None:
        if ref in self._ids:
            return ref
        return self._by_name.get(ref.lstrip("#"))

    def _next_ts(self) -> str:
        self._last_ts_us = max(int(self._clock() * 1_000_000), self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def _find(self, channel: str, ts: str) -> SlackMessage | None:
        return next((m for m in self._messages[channel] if m.ts == ts), None)

    async def _parse(self, request: web.Request) -> Incoming:
        path = request.path
        if path.startswith("/services/"):
            head, _, _secret = path.rpartition("/")
            method, path = "webhook", f"{head}/{REDACTED}"
        elif path.startswith("/actions/"):
            head, _, _secret = path.rpartition("/")
            method, path = "response_url", f"{head}/{REDACTED}"
        elif path.startswith("/api/"):
            method = path.removeprefix("/api/")
        else:
            method = "unknown"
        try:
            body = await read_params(request)
        except BodyError as exc:
            return Incoming(method, path, {}, exc.code)
        return Incoming(method, path, body)

    async def _handle(self, incoming: Incoming, request: web.Request) -> web.StreamResponse:
        if incoming.method == "webhook":
            return self._webhook(request, incoming)
        if incoming.method == "response_url":
            return self._respond(request, incoming)
        handler = self._api.get(incoming.method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        headers: dict[str, str] = {}
        try:
            token = self._check_auth(request.headers.get("Authorization"))
            granted = self.scopes.get(token, set(DEFAULT_SCOPES))
            headers["X-OAuth-Scopes"] = ",".join(sorted(granted))
            self._check_scope(incoming.method, granted)
            if incoming.error is not None:
                raise SlackError(incoming.error)
            answer = handler(dict(incoming.body), granted)
        except SlackError as exc:
            answer = {"ok": False, "error": exc.code, **exc.extra}
            if exc.messages:
                answer["response_metadata"] = {"messages": exc.messages}
        return web.json_response(answer, headers=headers)

    def _check_auth(self, header: str | None) -> str:
        """The bearer token, when it is a known one."""
        if not header:
            raise SlackError("not_authed")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or token.strip() not in self.tokens:
            raise SlackError("invalid_auth")
        return token.strip()

    @staticmethod
    def _check_scope(method: str, granted: set[str]) -> None:
        needed = _NEEDED.get(method)
        if needed is not None and needed not in granted:
            raise SlackError("missing_scope", needed=needed, provided=",".join(sorted(granted)))

    def _fault_response(self, fault: Fault, incoming: Incoming) -> web.Response:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        error = fault.error or _default_error(fault.status)
        if incoming.method in ("webhook", "response_url"):
            return web.Response(status=fault.status, text=error, headers=headers)
        return web.json_response(
            {"ok": False, "error": error}, status=fault.status, headers=headers
        )

    def _auth_test(self, body: dict[str, Any], _: set[str]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"{self.url}/",
            "team": "Fake Workspace",
            "user": "relay-bot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _conversation(self, cid: str) -> dict[str, Any]:
        """A public channel as ``conversations.info`` / ``conversations.list`` show it."""
        name = self._names[cid]
        return {
            "id": cid,
            "name": name,
            "name_normalized": name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": False,
            "is_archived": cid in self.archived,
            "is_general": False,
            "is_shared": False,
            "is_org_shared": False,
            "is_member": cid not in self.not_member,
            "created": CREATED,
            "creator": "U0FAKEADMIN",
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }

    def _conversations_info(self, body: dict[str, Any], _: set[str]) -> dict[str, Any]:
        """Takes a channel ID only: a ``#name`` is ``channel_not_found``, as on Slack."""
        cid = str(body.get("channel") or "")
        if cid not in self._ids:
            raise SlackError("channel_not_found")
        return {"ok": True, "channel": self._conversation(cid)}

    def _conversations_list(self, body: dict[str, Any], _: set[str]) -> dict[str, Any]:
        """Public channels, by ID order, paged with an opaque ``cursor`` (``limit`` up to 1000)."""
        types = str(body.get("types") or "public_channel").split(",")
        if not set(types) <= {"public_channel", "private_channel", "mpim", "im"}:
            raise SlackError("invalid_types")
        try:
            limit = min(int(body.get("limit") or 100), 1000)
            start = _offset(str(body.get("cursor") or ""))
        except ValueError:
            raise SlackError("invalid_cursor") from None
        ids = sorted(self._ids) if "public_channel" in types else []
        if _truthy(body.get("exclude_archived")):
            ids = [cid for cid in ids if cid not in self.archived]
        page = ids[start : start + limit]
        more = start + limit < len(ids)
        next_cursor = _cursor(start + limit) if more else ""
        return {
            "ok": True,
            "channels": [self._conversation(cid) for cid in page],
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _post_message(self, body: dict[str, Any], scopes: set[str]) -> dict[str, Any]:
        cid = self._resolve(str(body.get("channel") or ""))
        if cid is None:
            raise SlackError("channel_not_found")
        if cid in self.archived:
            raise SlackError("is_archived")
        if cid in self.not_member and "chat:write.public" not in scopes:
            raise SlackError("not_in_channel")
        text, blocks, attachments = _content(body)
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and not (isinstance(thread_ts, str) and _TS.match(thread_ts)):
            raise SlackError(
                "invalid_thread_ts", [f"[ERROR] {thread_ts!r} is not a valid thread_ts"]
            )
        message = SlackMessage(
            channel=cid,
            ts=self._next_ts(),
            text=text or "",
            blocks=blocks,
            attachments=attachments,
            params=body,
            thread_ts=thread_ts,
            reply_broadcast=_truthy(body.get("reply_broadcast")),
            orphan=thread_ts is not None and self._find(cid, thread_ts) is None,
        )
        self._messages[cid].append(message)
        return {"ok": True, "channel": cid, "ts": message.ts, "message": message.as_api()}

    def _update(self, body: dict[str, Any], _: set[str]) -> dict[str, Any]:
        cid = str(body.get("channel") or "")
        if cid not in self._ids:
            raise SlackError("channel_not_found")
        if cid in self.not_member:
            raise SlackError("not_in_channel")
        message = self._find(cid, str(body.get("ts") or ""))
        if message is None:
            raise SlackError("message_not_found")
        if message.via_webhook:
            raise SlackError("cant_update_message")
        text, blocks, attachments = _content(body)
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        message.history.append(SlackVersion(message.text, message.blocks, message.attachments))
        message.text = text if text is not None else message.text
        if blocks is not None:
            message.blocks = blocks or None
        if attachments is not None:
            message.attachments = attachments or None
        if "reply_broadcast" in body:
            message.reply_broadcast = _truthy(body["reply_broadcast"])
        message.params = body
        return {
            "ok": True,
            "channel": cid,
            "ts": message.ts,
            "text": message.text,
            "message": message.as_api(),
        }

    def _webhook(self, request: web.Request, incoming: Incoming) -> web.Response:
        channel = self._webhooks.get(request.path.removeprefix("/services/"))
        if channel is None:
            return web.Response(status=404, text="no_service")
        body = incoming.body
        if "payload" in body and isinstance(body["payload"], str):
            try:
                body = json.loads(body["payload"])
            except ValueError:
                body = None  # type: ignore[assignment]
        if incoming.error is not None or not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        try:
            text, blocks, attachments = _content(body)
        except SlackError as exc:
            return web.Response(status=400, text=exc.code)
        if not text and not blocks and not attachments:
            return web.Response(status=400, text="no_text")
        message = SlackMessage(
            channel=channel,
            ts=self._next_ts(),
            text=text or "",
            blocks=blocks,
            attachments=attachments,
            params=body,
            via_webhook=True,
        )
        self._messages[channel].append(message)
        return web.Response(text="ok", content_type="text/html")

    def _respond(self, request: web.Request, incoming: Incoming) -> web.Response:
        """A post to a ``response_url``: JSON only; an ephemeral message, a new message in the
        channel (``in_channel``), a replacement of the original (``replace_original``) or its
        deletion (``delete_original``)."""
        target = self._response_urls.get(request.path.removeprefix("/actions/"))
        if target is None or self._clock() - target.created > RESPONSE_URL_TTL:
            return _refusal(404, "expired_url")
        if target.uses >= RESPONSE_URL_USES:
            return _refusal(404, "used_url")
        body = incoming.body
        if incoming.error is not None or request.content_type != "application/json":
            return _refusal(400, "invalid_payload")
        if body.get("response_type", "ephemeral") not in ("ephemeral", "in_channel"):
            return _refusal(400, "invalid_response_type")
        if any(not isinstance(body.get(k, False), bool) for k in _RESPONSE_FLAGS):
            return _refusal(400, "invalid_payload")  # "true" as a string is not taken
        try:
            text, blocks, attachments = _content(body)
        except SlackError as exc:
            return _refusal(400, exc.code)
        deleting = body.get("delete_original") is True
        if not deleting and not text and not blocks and not attachments:
            return _refusal(400, "no_text")
        target.uses += 1
        response = SlackResponse(target.channel, target.ts, dict(body))
        original = None
        if target.channel is not None and target.ts is not None:
            original = self._find(target.channel, target.ts)
        if deleting and original is not None:
            self._messages[original.channel].remove(original)
        elif response.replaced and original is not None:
            original.history.append(
                SlackVersion(original.text, original.blocks, original.attachments)
            )
            original.text, original.blocks = text or "", blocks
            original.attachments = attachments
        elif body.get("response_type") == "in_channel" and target.channel is not None:
            self._messages[target.channel].append(
                SlackMessage(target.channel, self._next_ts(), text or "", blocks, attachments, body)
            )
        self.responses.append(response)
        return web.json_response({"ok": True})


def _refusal(status: int, error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error}, status=status)


def _content(
    body: dict[str, Any],
) -> tuple[str | None, list[dict[str, Any]] | None, list[Any] | None]:
    """``(text, blocks, attachments)`` of a request, validated; None means absent.

    ``markdown_text`` stands in for ``text`` when that is absent."""
    text = body.get("text", body.get("markdown_text"))
    if text is not None:
        text = str(text)
        if len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
    blocks = _json_list(body.get("blocks"), "invalid_blocks_format")
    if blocks is not None:
        problem = check_blocks(blocks)
        if problem is not None:
            raise SlackError(problem[0], problem[1])
    attachments = _json_list(body.get("attachments"), "invalid_attachments")
    return text, blocks, attachments


def _json_list(value: Any, error: str) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SlackError(error) from None
    if not isinstance(value, list):
        raise SlackError(error)
    return value


def check_blocks(blocks: list[Any]) -> tuple[str, list[str]] | None:
    """Return ``(error, messages)`` when Slack would refuse these blocks, else None."""
    if not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks):
        return "invalid_blocks_format", ["[ERROR] each block needs a string 'type'"]
    problems: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"[ERROR] no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in seen_ids:
                problems.append(f"[ERROR] duplicate block_id [json-pointer:{where}/block_id]")
            seen_ids.add(block_id)
            if not isinstance(block_id, str) or not 1 <= len(block_id) <= MAX_BLOCK_ID:
                problems.append(f"[ERROR] must be 1 to {MAX_BLOCK_ID} characters "
                                f"[json-pointer:{where}/block_id]")  # fmt: skip
        problems.extend(_block_problems(block, where))
    return ("invalid_blocks", problems) if problems else None


def _block_problems(block: dict[str, Any], where: str) -> list[str]:
    kind = block["type"]
    if kind not in _KNOWN_BLOCKS:
        return [f"[ERROR] unsupported type: {kind} [json-pointer:{where}/type]"]
    if kind == "section":
        if "text" not in block and "fields" not in block:
            return [f"[ERROR] must provide either text or fields [json-pointer:{where}]"]
        problems = []
        if "text" in block:
            problems += _text_problems(
                block["text"], 3000, f"{where}/text", ("mrkdwn", "plain_text")
            )
        fields = block.get("fields", [])
        if not isinstance(fields, list) or len(fields) > 10:
            problems.append(f"[ERROR] no more than 10 items allowed [json-pointer:{where}/fields]")
        else:
            for j, item in enumerate(fields):
                problems += _text_problems(
                    item, 2000, f"{where}/fields/{j}", ("mrkdwn", "plain_text")
                )
        return problems
    if kind == "header":
        return _text_problems(block.get("text"), 150, f"{where}/text", ("plain_text",))
    if kind in ("context", "actions"):
        limit = 10 if kind == "context" else MAX_ELEMENTS
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= limit:
            return [f"[ERROR] must have 1 to {limit} items [json-pointer:{where}/elements]"]
        if kind == "actions":
            return _actions_problems(elements, f"{where}/elements")
    if kind == "image" and not block.get("alt_text"):
        return [f"[ERROR] missing required field: alt_text [json-pointer:{where}]"]
    return []


def _actions_problems(elements: list[Any], where: str) -> list[str]:
    """An ``actions`` block's elements: buttons checked field by field (Slack's limits),
    ``action_id`` unique within the block; other interactive elements by type only."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, element in enumerate(elements):
        at = f"{where}/{i}"
        if not isinstance(element, dict) or element.get("type") not in _ACTION_ELEMENTS:
            problems.append(f"[ERROR] unsupported element type [json-pointer:{at}/type]")
            continue
        action_id = element.get("action_id")
        if action_id is not None:
            if not isinstance(action_id, str) or not 1 <= len(action_id) <= MAX_ACTION_ID:
                problems.append(
                    f"[ERROR] must be a string of 1 to {MAX_ACTION_ID} characters "
                    f"[json-pointer:{at}/action_id]"
                )
            elif action_id in seen:
                problems.append(f"[ERROR] duplicate action_id [json-pointer:{at}/action_id]")
            else:
                seen.add(action_id)
        if element["type"] == "button":
            problems += _button_problems(element, at)
    return problems


def _button_problems(button: dict[str, Any], where: str) -> list[str]:
    unknown = sorted(set(button) - _BUTTON_FIELDS)
    if unknown:
        return [f"[ERROR] unknown field: {unknown[0]} [json-pointer:{where}/{unknown[0]}]"]
    problems = _text_problems(button.get("text"), MAX_BUTTON_TEXT, f"{where}/text", ("plain_text",))
    value = button.get("value")
    if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= MAX_VALUE):
        problems.append(
            f"[ERROR] must be a string of 1 to {MAX_VALUE} characters [json-pointer:{where}/value]"
        )
    if "style" in button and button["style"] not in ("primary", "danger"):
        problems.append(f"[ERROR] must be primary or danger [json-pointer:{where}/style]")
    url = button.get("url")
    if url is not None and (not isinstance(url, str) or len(url) > 3000):
        problems.append(f"[ERROR] must be less than 3001 characters [json-pointer:{where}/url]")
    return problems


def _text_problems(obj: Any, limit: int, where: str, kinds: tuple[str, ...]) -> list[str]:
    if (
        not isinstance(obj, dict)
        or obj.get("type") not in kinds
        or not isinstance(obj.get("text"), str)
    ):
        return [
            f"[ERROR] must be a text object of type {' or '.join(kinds)} [json-pointer:{where}]"
        ]
    length = len(obj["text"])
    if length == 0:
        return [f"[ERROR] must be more than 0 characters [json-pointer:{where}/text]"]
    if length > limit:
        return [f"[ERROR] must be less than {limit + 1} characters [json-pointer:{where}/text]"]
    return []


def _cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str) -> int:
    """The offset an opaque cursor stands for (0 for none); ValueError when it is not ours."""
    if not cursor:
        return 0
    kind, _, value = base64.b64decode(cursor, validate=True).decode().partition(":")
    if kind != "offset" or not value.isdigit():
        raise ValueError(cursor)
    return int(value)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true")
    return bool(value)


def _default_error(status: int) -> str:
    if status == 429:
        return "ratelimited"
    if status == 503:
        return "service_unavailable"
    return "internal_error" if status >= 500 else "request_failed"


async def _main() -> None:
    parser = cli_parser("Fake Slack Web API + incoming webhooks")
    parser.add_argument("--token", action="append", help=f"valid token (default {DEFAULT_TOKEN})")
    parser.add_argument(
        "--channel",
        action="append",
        metavar="NAME=ID",
        help="known channel (default #video-alerts=C0VIDEO)",
    )
    parser.add_argument("--not-member", action="append", default=[], metavar="CHANNEL")
    args = parser.parse_args()
    channels = dict(c.split("=", 1) for c in args.channel) if args.channel else DEFAULT_CHANNELS
    slack = FakeSlack(
        tokens=args.token or (DEFAULT_TOKEN,),
        channels=channels,
        not_member=args.not_member,
        host=args.host,
        port=args.port,
        on_call=print_call,
    )

    def describe() -> list[str]:
        lines = [f"fake slack listening on {slack.url}", f"web api base_url: {slack.api_url}"]
        lines += [f"webhook for {name}: {slack.webhook_url(cid)}" for name, cid in channels.items()]
        return lines

    await serve_forever(slack, describe)


if __name__ == "__main__":
    run(_main)
