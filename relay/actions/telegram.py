"""Presses from Telegram: the bot's webhook on ``actions.telegram.path``.

Telegram POSTs each ``Update`` as JSON with ``X-Telegram-Bot-Api-Secret-Token`` (the
``secret_token`` that ``relay telegram set-webhook`` registered). In order: configured (else
404) → ``Content-Length`` (413) → the secret, compared in constant time (401 with no side effect,
429 + Retry-After from a client that sent too many wrong ones) → the body, at most 64 KiB, within
``server.read_timeout`` (413, 408) → JSON (400) → a callback query whose data is a relay button's
(``ma1:…``) becomes a ``Press`` for ``Actions.accept``. The answer is an empty 200 at once; any
other update is 200 and ignored (Telegram re-sends what its webhook did not take with a 2xx).

The answer to the presser and the removal of the buttons go through the bot that received the
press: the Telegram channel named by ``?bot=<channel>`` in the webhook URL (``set-webhook`` puts
it there), else the config's only Telegram bot. It is looked up when used, so a press answered
after a reload uses the channel serving then.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from relay.actions.inbound import MAX_BODY_BYTES, read_body, refuse
from relay.actions.model import BUTTON_PREFIX, Press, Presser, PressSurface
from relay.actions.perform import ACTIONS_KEY
from relay.admin import FailedAuthLimiter
from relay.channels.base import DeliveryError, MessageRef
from relay.channels.telegram_settings import TelegramSettings
from relay.config import RelayConfig
from relay.receiver import BadPayload, error, parse_json
from relay.text import oneline

__all__ = [
    "MAX_BODY_BYTES",
    "SECRET_HEADER",
    "CallbackBot",
    "TelegramPresses",
    "TelegramSurface",
    "add_telegram_route",
    "press_of",
]

log = logging.getLogger("relay.actions.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
BOT_QUERY = "bot"
"""The query parameter naming the Telegram channel whose bot the webhook belongs to."""
MAX_NAME = 64
"""Characters of a presser's name kept (it is shown in the run's thread)."""
_PHOTO = ":photo"
"""As the Telegram channel marks a photo's ref (its edits use ``editMessageCaption``)."""


@runtime_checkable
class CallbackBot(Protocol):
    """What a press needs of a Telegram channel (``relay.channels.telegram.TelegramChannel``)."""

    async def answer_callback_query(self, query_id: str, text: str) -> None: ...

    async def remove_buttons(self, ref: MessageRef) -> None: ...


@dataclass(frozen=True, slots=True)
class TelegramSurface:
    """Where a Telegram press came from. A failure to answer is logged, never raised: the
    press's outcome is recorded whatever the chat says."""

    bot: Callable[[], CallbackBot | None]
    """The channel whose bot received the press, as serving now (None: gone in a reload)."""
    query_id: str
    message: MessageRef | None

    async def answer(self, text: str) -> None:
        """``answerCallbackQuery`` (a short notice to the presser only)."""
        bot = self.bot()
        if bot is None:
            log.warning("cannot answer a Telegram press: its bot's channel is gone")
            return
        try:
            await bot.answer_callback_query(self.query_id, text)
        except DeliveryError as exc:
            log.warning("answering a Telegram press failed: %s", exc.reason)

    async def remove_buttons(self) -> None:
        """``editMessageReplyMarkup`` without a keyboard on the pressed message."""
        bot = self.bot()
        if bot is None or self.message is None:
            return
        try:
            await bot.remove_buttons(self.message)
        except DeliveryError as exc:
            log.warning("taking the buttons off a Telegram message failed: %s", exc.reason)


def press_of(
    update: dict[str, Any], surface: Callable[[str, MessageRef | None], PressSurface]
) -> Press | None:
    """The press in ``update``, or None when it is no press of a relay button.

    ``surface(query_id, message)`` builds the press's surface. ``BadPayload`` when a relay
    button's callback query lacks its id or user.
    """
    query = update.get("callback_query")
    if not isinstance(query, dict):
        return None
    data = query.get("data")
    if not isinstance(data, str) or not data.startswith(BUTTON_PREFIX):
        return None
    query_id, user = query.get("id"), query.get("from")
    if not isinstance(query_id, str) or not query_id or not isinstance(user, dict):
        raise BadPayload("callback query without its id or user")
    user_id = user.get("id")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise BadPayload("callback query without a numeric user id")
    name = user.get("username") or user.get("first_name")
    presser = Presser(
        "telegram", str(user_id), oneline(name)[:MAX_NAME] if isinstance(name, str) else None
    )
    message = _message_ref(query.get("message"))
    return Press(data, presser, message, surface(query_id, message))


def _message_ref(message: Any) -> MessageRef | None:
    """The pressed message as the Telegram channel names its refs (None: an inline message)."""
    if not isinstance(message, dict):
        return None
    chat, message_id = message.get("chat"), message.get("message_id")
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if not isinstance(chat_id, int) or not isinstance(message_id, int):
        return None
    suffix = _PHOTO if "photo" in message else ""
    return MessageRef(str(chat_id), f"{message_id}{suffix}")


class TelegramPresses:
    """The webhook handler. ``config()`` is the config serving now; ``channel(name)`` the
    started channel of that name serving now (or None); ``limiter`` counts wrong secrets per
    client."""

    def __init__(
        self,
        config: Callable[[], RelayConfig],
        channel: Callable[[str], object],
        limiter: FailedAuthLimiter,
    ) -> None:
        self._config = config
        self._channel = channel
        self._limiter = limiter

    async def handle(self, request: web.Request) -> web.Response:
        config = self._config()
        settings = config.actions.telegram
        if settings is None or request.path != settings.path:
            return error(404, "not found")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        secret = settings.secret_token.get_secret_value().encode("utf-8")
        if not _secret_ok(request.headers.getall(SECRET_HEADER, []), secret):
            return self._refused(request, config)
        body = await read_body(request, config.server.read_timeout)
        if isinstance(body, web.Response):
            return body
        try:
            update = parse_json(body)
        except BadPayload as exc:
            return error(400, str(exc))
        if not isinstance(update, dict):
            return error(400, "not a Telegram update (expected a JSON object)")
        bot = _bot_name(config, request.query.get(BOT_QUERY))
        if bot is None:
            return error(404, "no such Telegram bot: register the webhook with set-webhook")
        try:
            press = press_of(update, lambda query, message: self._surface(bot, query, message))
        except BadPayload as exc:
            return error(400, str(exc))
        if press is not None:
            actions = request.app.get(ACTIONS_KEY)
            if actions is None:
                return error(503, "chat actions are not running")
            actions.accept(press)
        return web.Response()  # empty: a JSON answer could be read as a Bot API call

    def _surface(self, bot: str, query_id: str, message: MessageRef | None) -> TelegramSurface:
        return TelegramSurface(lambda: self._bot(bot), query_id, message)

    def _bot(self, name: str) -> CallbackBot | None:
        channel = self._channel(name)
        return channel if isinstance(channel, CallbackBot) else None

    def _refused(self, request: web.Request, config: RelayConfig) -> web.Response:
        return refuse(
            request, config, self._limiter, log=log,
            why=f"Telegram press refused: missing or wrong {SECRET_HEADER}",
            answer=f"missing or wrong {SECRET_HEADER} header",
        )  # fmt: skip


def _secret_ok(provided: list[str], secret: bytes) -> bool:
    """Exactly one header, equal to the secret (constant time, as bytes)."""
    if len(provided) != 1:
        return False
    return hmac.compare_digest(provided[0].encode("utf-8", "surrogateescape"), secret)


def _bot_name(config: RelayConfig, named: str | None) -> str | None:
    """The Telegram channel whose bot answers: ``named`` if it is one, else the only bot's
    (channels sharing a token and API are one bot); None when that says nothing."""
    channels = config.channels
    telegram = {n: s for n, s in channels.items() if isinstance(s, TelegramSettings)}
    if named is not None:
        return named if named in telegram else None
    bots = {(s.token.get_secret_value(), s.api_url) for s in telegram.values()}
    return next(iter(telegram)) if len(bots) == 1 else None


def add_telegram_route(
    app: web.Application,
    path: str,
    *,
    config: Callable[[], RelayConfig],
    channel: Callable[[str], object],
    limiter: FailedAuthLimiter,
) -> TelegramPresses:
    """Serve Telegram's webhook on ``path`` (``actions.telegram.path``); the handler answers 404
    while the config serving has no ``actions.telegram``, or names another path.
    ``channel(name)``: the started relay channel of that name serving now (None when none)."""
    presses = TelegramPresses(config, channel, limiter)
    app.router.add_post(path, presses.handle)
    return presses
