"""A strict local fake of the Telegram Bot API (getMe, getChat, sendMessage, sendPhoto,
editMessageText, editMessageCaption, editMessageReplyMarkup, answerCallbackQuery, setWebhook),
shaped after what python-telegram-bot's ``Bot(token, base_url=...)`` sends.

``reply_markup`` must be a well-formed inline keyboard (tests.fakes.telegram_markup).
``press(...)`` makes the Update Telegram would POST to a webhook when a user presses a button;
its ``callback_query.id`` is then the one ``answerCallbackQuery`` accepts, once.

Bodies may be form-urlencoded (nested objects as JSON strings), multipart or JSON. HTML
``parse_mode`` is checked like Telegram does, and stricter on one point: a bare ``&`` that starts
no entity is refused (Telegram would keep it literally). Lengths are counted in UTF-16 code
units after entity parsing. Run by hand: ``python -m tests.fakes.telegram --port 8102``.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from http import HTTPStatus
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
from tests.fakes.telegram_html import EntityParseError, parse_html, utf16_len
from tests.fakes.telegram_markup import MarkupError, inline_markup

__all__ = [
    "CallbackQuery",
    "FakeTelegram",
    "TelegramChat",
    "TelegramMessage",
    "TelegramVersion",
    "Webhook",
]

DEFAULT_TOKEN = "123456:TEST-token"
DEFAULT_CHAT_ID = -1001234567890
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_ANSWER = 200
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
WEBHOOK_SECRET_ALPHABET = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
)
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
BOT_USER = {
    "id": 123456,
    "is_bot": True,
    "first_name": "Relay Test Bot",
    "username": "relay_test_bot",
}
_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[^/]+)$")
_KICKED = {
    "private": "Forbidden: bot was blocked by the user",
    "group": "Forbidden: bot was kicked from the group chat",
    "supergroup": "Forbidden: bot was kicked from the supergroup chat",
    "channel": "Forbidden: bot is not a member of the channel chat",
}


@dataclass(frozen=True)
class TelegramChat:
    """A chat the bot knows; with ``topics`` set, only those ``message_thread_id``s exist."""

    id: int
    type: str = "supergroup"
    title: str = "Video alerts"
    username: str | None = None
    topics: frozenset[int] | None = None

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        out["first_name" if self.type == "private" else "title"] = self.title
        if self.username:
            out["username"] = self.username
        return out


@dataclass(frozen=True)
class TelegramVersion:
    """One version of a message's content; ``raw`` is the text or caption as sent."""

    content: str | None
    raw: str | None
    parse_mode: str | None
    entities: list[dict[str, Any]]
    reply_markup: Any


@dataclass
class TelegramMessage:
    """Current state of a sent message; ``history`` holds the versions before each edit.

    ``content`` is the text (``kind == "text"``) or caption (``kind == "photo"``) after entity
    parsing; ``photo`` is the URL, file_id or ``upload:<filename>`` that was sent.
    """

    chat: TelegramChat
    message_id: int
    date: int
    kind: str
    content: str | None
    raw: str | None
    parse_mode: str | None
    entities: list[dict[str, Any]]
    params: dict[str, Any]
    photo: str | None = None
    photo_sizes: list[dict[str, Any]] = field(default_factory=list)
    message_thread_id: int | None = None
    reply_to: TelegramMessage | None = None
    reply_markup: Any = None
    edit_date: int | None = None
    history: list[TelegramVersion] = field(default_factory=list)

    @property
    def text(self) -> str | None:
        return self.content if self.kind == "text" else None

    @property
    def caption(self) -> str | None:
        return self.content if self.kind == "photo" else None

    def version(self) -> TelegramVersion:
        return TelegramVersion(
            self.content, self.raw, self.parse_mode, self.entities, self.reply_markup
        )

    def as_api(self, *, with_reply: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message_id": self.message_id,
            "from": BOT_USER,
            "chat": self.chat.as_api(),
            "date": self.date,
        }
        key = "text" if self.kind == "text" else "caption"
        if self.kind == "photo":
            out["photo"] = self.photo_sizes
        if self.content:
            out[key] = self.content
            if self.entities:
                out["entities" if self.kind == "text" else "caption_entities"] = self.entities
        if self.message_thread_id is not None:
            out["message_thread_id"] = self.message_thread_id
        if self.reply_to is not None and with_reply:
            out["reply_to_message"] = self.reply_to.as_api(with_reply=False)
        if self.reply_markup is not None:
            out["reply_markup"] = self.reply_markup
        if self.edit_date is not None:
            out["edit_date"] = self.edit_date
        return out


@dataclass
class CallbackQuery:
    """A press ``press()`` made; ``answers`` holds each ``answerCallbackQuery`` body for it."""

    id: str
    token: str
    message: TelegramMessage | None
    data: str
    answers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Webhook:
    """What ``setWebhook`` registered for one bot (by token)."""

    url: str
    secret_token: str | None
    allowed_updates: list[str] | None


class TgError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def bad(description: str) -> TgError:
    return TgError(400, f"Bad Request: {description}")


class FakeTelegram(FakeServer):
    """Fake Telegram Bot API. Chats in ``kicked`` answer 403; photo URLs in ``refused_photo_urls``
    answer 400 like a URL Telegram cannot fetch. ``webhooks`` maps a token to its ``Webhook``."""

    secret_fields = frozenset({"secret_token"})

    def __init__(
        self,
        *,
        tokens: Collection[str] = (DEFAULT_TOKEN,),
        chats: Collection[TelegramChat] = (TelegramChat(DEFAULT_CHAT_ID),),
        kicked: Collection[int] = (),
        refused_photo_urls: Collection[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        on_call: Callable[[Call], None] | None = None,
    ) -> None:
        super().__init__(host=host, port=port, on_call=on_call)
        self.tokens = set(tokens)
        self.chats = {chat.id: chat for chat in chats}
        self.kicked = set(kicked)
        self.refused_photo_urls = set(refused_photo_urls)
        self._messages: dict[int, list[TelegramMessage]] = {cid: [] for cid in self.chats}
        self._file_ids: set[str] = set()
        self._file_seq = itertools.count(1)
        self._query_seq = itertools.count(1)
        self.queries: dict[str, CallbackQuery] = {}
        self.webhooks: dict[str, Webhook] = {}
        self._token = ""
        """The token of the call being answered (methods that keep state per bot read it)."""
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": self._get_me,
            "getChat": self._get_chat,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "editMessageText": self._edit_text,
            "editMessageCaption": self._edit_caption,
            "editMessageReplyMarkup": self._edit_markup,
            "answerCallbackQuery": self._answer_callback,
            "setWebhook": self._set_webhook,
        }
        self._canonical = {name.lower(): name for name in self._methods}

    @property
    def base_url(self) -> str:
        """The ``base_url`` for ``telegram.Bot`` (the token is appended to it)."""
        return f"{self.url}/bot"

    def messages(self, chat_id: int | str) -> list[TelegramMessage]:
        """Messages of a chat in send order, each in its current state with its edit history."""
        return list(self._messages[int(chat_id)])

    def press(
        self,
        chat_id: int | str,
        message_id: int,
        *,
        user_id: int = 424242,
        username: str | None = "alice",
        first_name: str = "Alice",
        data: str | None = None,
        token: str = DEFAULT_TOKEN,
        update_id: int | None = None,
    ) -> dict[str, Any]:
        """The Update of a user pressing a button of a message: ``data`` is that button's
        ``callback_data`` (default: the first button's)."""
        message = self._find(self.chats[int(chat_id)], message_id)
        if message is None:
            raise KeyError(f"no message {message_id} in chat {chat_id}")
        if data is None:
            data = message.reply_markup["inline_keyboard"][0][0]["callback_data"]
        number = next(self._query_seq)
        query = CallbackQuery(f"{4_000_000_000_000_000_000 + number}", token, message, data)
        self.queries[query.id] = query
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username is not None:
            user["username"] = username
        return {
            "update_id": update_id if update_id is not None else 900_000_000 + number,
            "callback_query": {
                "id": query.id,
                "from": user,
                "message": message.as_api(),
                "chat_instance": "-7000000000000000001",
                "data": data,
            },
        }

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        retry_after: int | None = 2,
        description: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``n`` calls (to ``method``, e.g. ``"sendMessage"``) with ``status``.

        429 carries ``parameters.retry_after``; other codes the ``description`` (default: the
        HTTP phrase), e.g. ``fail_next(status=400, description="Bad Request: chat not found")``.
        """
        fault = Fault(n, status, method, retry_after if status == 429 else None, description)
        self._queue_fault(fault)

    async def _parse(self, request: web.Request) -> Incoming:
        match = _PATH.match(request.path)
        if match is None:
            return Incoming("unknown", request.path, {})
        method = self._canonical.get(match["method"].lower(), match["method"])
        path = f"/bot{REDACTED}/{match['method']}"
        try:
            body = await read_params(request)
        except BodyError:
            return Incoming(method, path, {}, "can't parse JSON object")
        return Incoming(method, path, body)

    async def _handle(self, incoming: Incoming, request: web.Request) -> web.StreamResponse:
        match = _PATH.match(request.path)
        try:
            if match is None:
                raise TgError(404, "Not Found")
            if match["token"] not in self.tokens:
                raise TgError(401, "Unauthorized")
            self._token = match["token"]
            handler = self._methods.get(incoming.method)
            if handler is None:
                raise TgError(404, "Not Found")
            if incoming.error is not None:
                raise bad(incoming.error)
            result = handler(dict(incoming.body))
        except TgError as exc:
            return _error(exc.status, exc.description)
        return web.json_response({"ok": True, "result": result})

    def _fault_response(self, fault: Fault, incoming: Incoming) -> web.Response:
        if fault.retry_after is not None:
            description = fault.error or f"Too Many Requests: retry after {fault.retry_after}"
            return _error(fault.status, description, {"retry_after": fault.retry_after})
        return _error(fault.status, fault.error or HTTPStatus(fault.status).phrase)

    def _get_me(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**BOT_USER, "can_join_groups": True, "can_read_all_group_messages": False}

    def _get_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A ``ChatFullInfo``: the chat plus the fields Telegram always sends."""
        chat = self._chat(body)
        out = chat.as_api()
        if chat.topics is not None:
            out["is_forum"] = True
        gifts = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
        return {
            **out,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {**dict.fromkeys(gifts, False), "gifts_from_channels": False},
        }

    def _chat(self, body: dict[str, Any]) -> TelegramChat:
        ref = str(body.get("chat_id") or "")
        if not ref:
            raise bad("chat_id is empty")
        chat = None
        if ref.startswith("@"):
            chat = next((c for c in self.chats.values() if c.username == ref[1:]), None)
        elif re.fullmatch(r"-?\d+", ref):
            chat = self.chats.get(int(ref))
        if chat is None:
            raise bad("chat not found")
        if chat.id in self.kicked:
            raise TgError(403, _KICKED.get(chat.type, _KICKED["group"]))
        return chat

    def _send_message(self, body: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(body)
        content, entities, mode = _text(body)
        message = self._new_message(chat, body, "text", content, body.get("text"), entities, mode)
        return message.as_api()

    def _send_photo(self, body: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(body)
        photo = body.get("photo")
        if isinstance(photo, dict):
            source = f"upload:{photo.get('filename')}"
        elif isinstance(photo, str) and photo.startswith(("http://", "https://")):
            if photo in self.refused_photo_urls:
                raise bad("wrong type of the web page content")
            source = photo
        elif isinstance(photo, str) and photo:
            if photo not in self._file_ids:
                raise bad("wrong file identifier/HTTP URL specified")
            source = photo
        else:
            raise bad("there is no photo in the request")
        content, entities, mode = _caption(body)
        message = self._new_message(
            chat, body, "photo", content, body.get("caption"), entities, mode
        )
        message.photo = source
        message.photo_sizes = self._photo_sizes()
        return message.as_api()

    def _new_message(
        self,
        chat: TelegramChat,
        body: dict[str, Any],
        kind: str,
        content: str | None,
        raw: Any,
        entities: list[dict[str, Any]],
        mode: str | None,
    ) -> TelegramMessage:
        thread_id = _optional_int(body.get("message_thread_id"), "message thread identifier")
        if thread_id is not None and chat.topics is not None and thread_id not in chat.topics:
            raise bad("message thread not found")
        reply_to = self._reply_target(chat, body)
        history = self._messages[chat.id]
        message = TelegramMessage(
            chat=chat,
            message_id=history[-1].message_id + 1 if history else 1,
            date=int(time.time()),
            kind=kind,
            content=content,
            raw=None if raw is None else str(raw),
            parse_mode=mode,
            entities=entities,
            params=body,
            message_thread_id=thread_id,
            reply_to=reply_to,
            reply_markup=_markup(body),
        )
        history.append(message)
        return message

    def _reply_target(self, chat: TelegramChat, body: dict[str, Any]) -> TelegramMessage | None:
        params = _json_field(body.get("reply_parameters"), "reply parameters")
        legacy = body.get("reply_to_message_id")
        if params is None and legacy is None:
            return None
        if params is None:
            params = {"message_id": legacy}
        if not isinstance(params, dict):
            raise bad("can't parse reply parameters JSON object")
        target_id = _optional_int(params.get("message_id"), "message identifier")
        target = self._find(chat, target_id)
        if target is None and not _truthy(params.get("allow_sending_without_reply")):
            raise bad("message to be replied not found")
        return target

    def _find(self, chat: TelegramChat, message_id: int | None) -> TelegramMessage | None:
        return next((m for m in self._messages[chat.id] if m.message_id == message_id), None)

    def _photo_sizes(self) -> list[dict[str, Any]]:
        n = next(self._file_seq)
        sizes = []
        for width, height in ((90, 51), (1280, 720)):
            file_id = f"AgACAgFAKE{n:06d}x{width}"
            self._file_ids.add(file_id)
            sizes.append(
                {"file_id": file_id, "file_unique_id": f"AQADFAKE{n}x{width}", "width": width,
                 "height": height, "file_size": width * height // 10}
            )  # fmt: skip
        return sizes

    def _edit_text(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._edit(body, "text")

    def _edit_caption(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._edit(body, "photo")

    def _edit(self, body: dict[str, Any], kind: str) -> dict[str, Any]:
        if "inline_message_id" in body:
            raise bad("message to edit not found")
        chat = self._chat(body)
        message_id = _optional_int(body.get("message_id"), "message identifier")
        if message_id is None:
            raise bad("message identifier is not specified")
        message = self._find(chat, message_id)
        if message is None:
            raise bad("message to edit not found")
        if message.kind != kind:
            what = "text" if kind == "text" else "caption"
            raise bad(f"there is no {what} in the message to edit")
        content, entities, mode = _text(body) if kind == "text" else _caption(body)
        raw = body.get("text" if kind == "text" else "caption")
        markup = _markup(body)
        if (content or None, entities, markup) == (
            message.content or None,
            message.entities,
            message.reply_markup,
        ):
            raise bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        message.history.append(message.version())
        message.content, message.entities, message.parse_mode = content, entities, mode
        message.raw = None if raw is None else str(raw)
        message.reply_markup = markup
        message.edit_date = int(time.time())
        message.params = body
        return message.as_api()

    def _edit_markup(self, body: dict[str, Any]) -> dict[str, Any]:
        if "inline_message_id" in body:
            raise bad("message to edit not found")
        chat = self._chat(body)
        message = self._find(chat, _optional_int(body.get("message_id"), "message identifier"))
        if message is None:
            raise bad("message to edit not found")
        markup = _markup(body)
        if markup == message.reply_markup:
            raise bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        message.history.append(message.version())
        message.reply_markup = markup
        message.edit_date = int(time.time())
        return message.as_api()

    def _answer_callback(self, body: dict[str, Any]) -> bool:
        query = self.queries.get(str(body.get("callback_query_id") or ""))
        if query is None or query.token != self._token or query.answers:
            raise bad(QUERY_INVALID)
        text = body.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_ANSWER:
            raise bad("MESSAGE_TOO_LONG")
        if str(body.get("show_alert", "false")).lower() not in ("true", "false"):
            raise bad("can't parse show_alert")
        query.answers.append(dict(body))
        return True

    def _set_webhook(self, body: dict[str, Any]) -> bool:
        url = str(body.get("url") or "")
        if url and not url.startswith("https://"):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = body.get("secret_token")
        if secret is not None and (
            not 1 <= len(str(secret)) <= 256 or not set(str(secret)) <= WEBHOOK_SECRET_ALPHABET
        ):
            raise bad("bad webhook: Secret token contains unallowed characters")
        allowed = _json_field(body.get("allowed_updates"), "allowed updates")
        if allowed is not None and (
            not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed)
        ):
            raise bad("can't parse allowed updates JSON array")
        if url:
            self.webhooks[self._token] = Webhook(
                url, None if secret is None else str(secret), allowed
            )
        else:
            self.webhooks.pop(self._token, None)
        return True


def _markup(body: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return inline_markup(body.get("reply_markup"))
    except MarkupError as exc:
        raise bad(str(exc)) from None


def _text(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str | None]:
    content, entities, mode = _formatted(body, "text")
    if content is None or not content.strip():
        raise bad("message text is empty")
    if utf16_len(content) > MAX_TEXT:
        raise bad("message is too long")
    return content, entities, mode


def _caption(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]], str | None]:
    content, entities, mode = _formatted(body, "caption")
    if content is not None and utf16_len(content) > MAX_CAPTION:
        raise bad("message caption is too long")
    return content, entities, mode


def _formatted(
    body: dict[str, Any], key: str
) -> tuple[str | None, list[dict[str, Any]], str | None]:
    """``(content, entities, parse_mode)`` of ``body[key]`` after entity parsing."""
    raw = body.get(key)
    mode = body.get("parse_mode") or None
    if mode is not None and str(mode).lower() not in ("html", "markdown", "markdownv2"):
        raise bad("unsupported parse_mode")
    if raw is None:
        return None, [], mode
    text = str(raw)
    if mode is None or str(mode).lower() != "html":
        return text, [], mode
    try:
        content, entities = parse_html(text)
    except EntityParseError as exc:
        raise bad(f"can't parse entities: {exc}") from None
    return content, entities, mode


def _json_field(value: Any, what: str) -> Any:
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise bad(f"can't parse {what} JSON object") from None


def _optional_int(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad(f"invalid {what} specified") from None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true")
    return bool(value)


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


async def _main() -> None:
    parser = cli_parser("Fake Telegram Bot API")
    parser.add_argument("--token", action="append", help=f"valid token (default {DEFAULT_TOKEN})")
    parser.add_argument(
        "--chat",
        action="append",
        metavar="ID[:TYPE]",
        help=f"known chat (default {DEFAULT_CHAT_ID}:supergroup)",
    )
    parser.add_argument("--kicked", action="append", type=int, default=[], metavar="CHAT_ID")
    parser.add_argument("--refuse-photo", action="append", default=[], metavar="URL")
    args = parser.parse_args()
    chats = [TelegramChat(DEFAULT_CHAT_ID)]
    if args.chat:
        chats = []
        for spec in args.chat:
            chat_id, _, kind = spec.partition(":")
            chats.append(TelegramChat(int(chat_id), kind or "supergroup"))
    telegram = FakeTelegram(
        tokens=args.token or (DEFAULT_TOKEN,),
        chats=chats,
        kicked=args.kicked,
        refused_photo_urls=args.refuse_photo,
        host=args.host,
        port=args.port,
        on_call=print_call,
    )

    def describe() -> list[str]:
        return [
            f"fake telegram listening on {telegram.url}",
            f"Bot(token, base_url={telegram.base_url!r})",
            "chats: " + ", ".join(f"{c.id} ({c.type})" for c in chats),
        ]

    await serve_forever(telegram, describe)


if __name__ == "__main__":
    run(_main)
