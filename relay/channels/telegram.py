"""Telegram channel: Bot API ``sendMessage`` / ``sendPhoto`` in HTML parse mode, edits, replies.

The Bot is built in ``start()`` without any request: the token is checked by the first send
(no ``getMe``), so a relay starts while Telegram is unreachable or the token is wrong, and the
failure lands on the deliveries, where it is visible and retried or dead-lettered. ``verify``
(``getMe`` + ``getChat``) finds a bad token or chat earlier, in the background.

python-telegram-bot puts the token in every URL (and in some exception texts): reasons are
scrubbed, and ``hide_in_logs`` masks it in the library logs.

A photo's ref id carries a ``:photo`` suffix so an edit knows to use ``editMessageCaption``.

``Message.buttons`` become one row of an inline keyboard (``callback_data`` = the button's value);
an edit sends the keyboard of the new message, so an edit without buttons takes them off. The
chat actions' inbound side uses ``answer_callback_query``, ``remove_buttons`` and ``set_webhook``.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import ClassVar, TypeVar

import aiohttp
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyParameters,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from relay.actions.model import Button
from relay.channels.base import (
    DeliveryError,
    Limits,
    Message,
    MessageRef,
    PermanentError,
    RetryableError,
    VerifyError,
    parse_retry_after,
)
from relay.channels.scrub import fingerprint, hide_in_logs, scrub
from relay.channels.telegram_settings import TelegramSettings
from relay.confmodel import RateLimit

__all__ = [
    "MAX_CALLBACK_DATA",
    "TelegramChannel",
    "TelegramSettings",
    "classify_telegram_error",
    "inline_keyboard",
]

_T = TypeVar("_T")
log = logging.getLogger(__name__)
_PHOTO = ":photo"
_PHOTO_REFUSALS = ("photo", "image", "web page content", "http url", "file identifier")
_NOT_MODIFIED = "message is not modified"
MAX_CALLBACK_DATA = 64
"""Bytes of a button's ``callback_data`` Telegram keeps."""
MAX_CALLBACK_ANSWER = 200
"""Characters of an ``answerCallbackQuery`` text Telegram shows."""


def _retry_after_seconds(exc: RetryAfter) -> float | None:
    with warnings.catch_warnings():  # an int attribute is deprecated unless PTB_TIMEDELTA=1
        warnings.simplefilter("ignore")
        value = exc.retry_after
    if isinstance(value, dt.timedelta):
        return parse_retry_after(value.total_seconds())
    return parse_retry_after(value)


def classify_telegram_error(exc: TelegramError, token: str) -> DeliveryError:
    """The Telegram retry decision; the token never reaches the reason."""
    text = scrub(str(exc.message), [token])
    if isinstance(exc, RetryAfter):
        return RetryableError(
            f"Telegram flood control: {text}",
            retry_after=_retry_after_seconds(exc),
            rate_limited=True,
        )
    if isinstance(exc, InvalidToken):
        return PermanentError("Telegram rejected the bot token (or the API URL is wrong)")
    if isinstance(exc, Forbidden):
        return PermanentError(f"Telegram refused: {text}")
    if isinstance(exc, BadRequest):
        return PermanentError(f"Telegram bad request: {text}")
    if isinstance(exc, ChatMigrated):
        return PermanentError(
            f"the group became a supergroup: set chat_id to {exc.new_chat_id} in the config"
        )
    if isinstance(exc, Conflict):
        return PermanentError(f"Telegram conflict: {text}")
    if isinstance(exc, TimedOut):
        return RetryableError("timed out talking to Telegram")
    if isinstance(exc, NetworkError):
        return RetryableError(f"Telegram unreachable or failing: {text}")
    return RetryableError(f"Telegram error ({type(exc).__name__}): {text}")


def inline_keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """One row of callback buttons; None for none. A value Telegram would refuse (empty, or over
    64 bytes) is a bug of the relay's: refused before any call."""
    if not buttons:
        return None
    for button in buttons:
        if not 1 <= len(button.value.encode("utf-8")) <= MAX_CALLBACK_DATA:
            raise PermanentError(
                f"button {button.action!r}: callback data must be 1 to {MAX_CALLBACK_DATA} bytes"
            )
    row = [InlineKeyboardButton(b.label, callback_data=b.value) for b in buttons]
    return InlineKeyboardMarkup([row])


def _split_ref(ref: MessageRef) -> tuple[int, bool]:
    raw, photo = (
        (ref.message_id[: -len(_PHOTO)], True)
        if ref.message_id.endswith(_PHOTO)
        else (ref.message_id, False)
    )
    try:
        return int(raw), photo
    except ValueError:
        raise PermanentError(f"not a Telegram message ref: {ref.message_id!r}") from None


class TelegramChannel:
    render_kind: ClassVar[str] = "telegram"
    limits: ClassVar[Limits] = Limits(text=4096, caption=1024)
    default_rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=1.0, burst=3)

    def __init__(self, name: str, settings: TelegramSettings, base_dir: Path) -> None:
        self.name = name
        self.settings = settings
        self._token = settings.token.get_secret_value()
        hide_in_logs(self._token)
        self._bot: Bot | None = None
        self._request: HTTPXRequest | None = None

    def __repr__(self) -> str:
        return f"TelegramChannel(name={self.name!r}, chat_id={self.settings.chat_id!r})"

    @property
    def rate_key(self) -> str:
        return f"telegram:{fingerprint(self._token)}:{self.settings.chat_id}"

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Build the Bot (it uses httpx, not the shared aiohttp session); no network call."""
        await self.close()
        timeout = self.settings.timeout
        self._request = HTTPXRequest(
            connection_pool_size=16,
            read_timeout=timeout,
            write_timeout=timeout,
            connect_timeout=timeout,
            pool_timeout=timeout,
        )
        await self._request.initialize()
        self._bot = Bot(
            self._token,
            base_url=f"{self.settings.api_url}/bot",
            base_file_url=f"{self.settings.api_url}/file/bot",
            request=self._request,
            get_updates_request=self._request,
        )

    async def close(self) -> None:
        if self._request is not None:
            await self._request.shutdown()
        self._bot = self._request = None

    async def send(self, message: Message) -> MessageRef | None:
        return await self._send(message, reply_to=None)

    async def reply(
        self, ref: MessageRef, message: Message, *, broadcast: bool = False
    ) -> MessageRef | None:
        """Answer ``ref`` (a quoted reply; Telegram has no threads to broadcast from)."""
        message_id, _ = _split_ref(ref)
        return await self._send(message, reply_to=message_id)

    async def edit(self, ref: MessageRef, message: Message) -> None:
        """Replace a sent message's text (or a photo's caption); "not modified" is success."""
        bot = self._started()
        message_id, photo = _split_ref(ref)
        keyboard = inline_keyboard(message.buttons)
        try:
            if photo:
                await self._call(
                    bot.edit_message_caption(
                        chat_id=ref.channel_id,
                        message_id=message_id,
                        caption=message.caption or message.text,
                        parse_mode="HTML",
                        reply_markup=keyboard,
                    )
                )
            else:
                await self._call(
                    bot.edit_message_text(
                        message.text,
                        chat_id=ref.channel_id,
                        message_id=message_id,
                        parse_mode="HTML",
                        link_preview_options=LinkPreviewOptions(is_disabled=True),
                        reply_markup=keyboard,
                    )
                )
        except PermanentError as exc:
            if _NOT_MODIFIED not in exc.reason.lower():
                raise

    async def remove_buttons(self, ref: MessageRef) -> None:
        """Take the inline keyboard off a message (``editMessageReplyMarkup`` without one);
        a message without buttons already is success."""
        bot = self._started()
        message_id, _ = _split_ref(ref)
        try:
            await self._call(
                bot.edit_message_reply_markup(chat_id=ref.channel_id, message_id=message_id)
            )
        except PermanentError as exc:
            if _NOT_MODIFIED not in exc.reason.lower():
                raise

    async def answer_callback_query(self, query_id: str, text: str) -> None:
        """Answer a button press: ``text`` shows briefly to the presser only (a toast)."""
        bot = self._started()
        await self._call(
            bot.answer_callback_query(query_id, text=text[:MAX_CALLBACK_ANSWER], show_alert=False)
        )

    async def set_webhook(self, url: str, secret_token: str, allowed_updates: list[str]) -> None:
        """Have Telegram POST this bot's updates to ``url``, with ``secret_token`` in
        ``X-Telegram-Bot-Api-Secret-Token``."""
        bot = self._started()
        await self._call(
            bot.set_webhook(url, secret_token=secret_token, allowed_updates=allowed_updates)
        )

    async def verify(self) -> str:
        """``getMe`` (the token), then ``getChat`` (the bot can see the chat); sends nothing."""
        bot = self._started()
        chat_id = self.settings.chat_id
        try:
            me = await self._call(bot.get_me())
        except DeliveryError as exc:
            raise VerifyError(exc.reason) from None
        try:
            chat = await self._call(bot.get_chat(chat_id))
        except DeliveryError as exc:
            raise VerifyError(f"chat {chat_id}: {exc.reason}") from None
        name = chat.title or chat.username or chat.first_name or chat.id
        return f"bot @{me.username}, {chat.type} chat {name}"

    async def _send(self, message: Message, *, reply_to: int | None) -> MessageRef:
        bot = self._started()
        settings = self.settings
        replying = (
            ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
            if reply_to is not None
            else None
        )
        keyboard = inline_keyboard(message.buttons)
        if message.image_url:
            try:
                photo = await self._call(
                    bot.send_photo(
                        chat_id=settings.chat_id,
                        photo=message.image_url,
                        caption=message.caption or message.text,
                        parse_mode="HTML",
                        message_thread_id=settings.message_thread_id,
                        disable_notification=settings.disable_notification,
                        reply_parameters=replying,
                        reply_markup=keyboard,
                    )
                )
                return MessageRef(str(photo.chat_id), f"{photo.message_id}{_PHOTO}")
            except PermanentError as exc:
                if not _photo_refused(exc.reason):
                    raise
                log.warning("channel %s: photo refused, sending text instead (%s)", self.name, exc)
        sent = await self._call(
            bot.send_message(
                chat_id=settings.chat_id,
                text=message.text,
                parse_mode="HTML",
                message_thread_id=settings.message_thread_id,
                disable_notification=settings.disable_notification,
                reply_parameters=replying,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_markup=keyboard,
            )
        )
        return MessageRef(str(sent.chat_id), str(sent.message_id))

    def _started(self) -> Bot:
        if self._bot is None:
            raise RuntimeError(f"channel {self.name!r} is not started")
        return self._bot

    async def _call(self, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except TelegramError as exc:
            raise classify_telegram_error(exc, self._token) from None


def _photo_refused(reason: str) -> bool:
    """Telegram could not use the image (bad URL, unreachable, not an image, bad size)."""
    lowered = reason.lower()
    return lowered.startswith("telegram bad request") and any(
        word in lowered for word in _PHOTO_REFUSALS
    )
