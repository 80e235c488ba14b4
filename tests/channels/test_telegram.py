"""Telegram channel against the strict fake Bot API."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError
from telegram.error import (
    BadRequest,
    ChatMigrated,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from relay.actions.model import Button
from relay.channels.base import DeliveryError, Message, MessageRef, PermanentError, RetryableError
from relay.channels.telegram import (
    TelegramChannel,
    TelegramSettings,
    classify_telegram_error,
    inline_keyboard,
)
from tests.fakes.telegram import DEFAULT_CHAT_ID, DEFAULT_TOKEN, FakeTelegram, TelegramChat

CHAT = str(DEFAULT_CHAT_ID)
PHOTO = "https://cdn.example.com/thumb.jpg"

MakeChannel = Callable[..., Awaitable[TelegramChannel]]

# PTB itself reads RetryAfter.retry_after in its constructor, which warns without PTB_TIMEDELTA.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def make_settings(telegram: FakeTelegram, **overrides: Any) -> TelegramSettings:
    data: dict[str, Any] = {
        "type": "telegram",
        "token": DEFAULT_TOKEN,
        "chat_id": CHAT,
        "api_url": telegram.url,
        "timeout": 5,
    }
    data.update(overrides)
    return TelegramSettings.model_validate(data)


@pytest.fixture
async def make(session: aiohttp.ClientSession) -> AsyncIterator[MakeChannel]:
    """``await make(fake, **settings)``: a started channel, closed after the test."""
    made: list[TelegramChannel] = []

    async def build(telegram: FakeTelegram, **overrides: Any) -> TelegramChannel:
        channel = TelegramChannel("ops", make_settings(telegram, **overrides), Path("."))
        await channel.start(session)
        made.append(channel)
        return channel

    yield build
    for channel in made:
        await channel.close()


async def test_text_message_in_html_without_link_preview(
    fake_telegram: FakeTelegram, make: MakeChannel
) -> None:
    channel = await make(fake_telegram)
    ref = await channel.send(Message(text="<b>Run failed</b> &lt;3 https://example.com"))

    [sent] = fake_telegram.messages(CHAT)
    assert ref == MessageRef(CHAT, str(sent.message_id))
    assert sent.kind == "text" and sent.text == "Run failed <3 https://example.com"
    assert sent.parse_mode == "HTML"
    assert '"is_disabled": true' in sent.params["link_preview_options"]


async def test_topic_and_silent_delivery(session: aiohttp.ClientSession, make: MakeChannel) -> None:
    async with FakeTelegram(chats=[TelegramChat(DEFAULT_CHAT_ID, topics=frozenset({42}))]) as tg:
        channel = await make(tg, message_thread_id=42, disable_notification=True)
        await channel.send(Message(text="hello"))
        [sent] = tg.messages(CHAT)
        assert sent.message_thread_id == 42
        assert sent.params["disable_notification"] in ("true", "True", True)

        wrong_topic = await make(tg, message_thread_id=7)
        with pytest.raises(PermanentError, match="thread not found"):
            await wrong_topic.send(Message(text="hello"))


async def test_photo_with_caption(fake_telegram: FakeTelegram, make: MakeChannel) -> None:
    channel = await make(fake_telegram)
    ref = await channel.send(Message(text="long text", image_url=PHOTO, caption="<i>New</i>"))

    [sent] = fake_telegram.messages(CHAT)
    assert sent.kind == "photo" and sent.photo == PHOTO and sent.caption == "New"
    assert ref == MessageRef(CHAT, f"{sent.message_id}:photo")


async def test_photo_without_caption_uses_the_text(
    fake_telegram: FakeTelegram, make: MakeChannel
) -> None:
    channel = await make(fake_telegram)
    await channel.send(Message(text="<b>Done</b>", image_url=PHOTO))
    assert fake_telegram.messages(CHAT)[0].caption == "Done"


async def test_refused_photo_falls_back_to_text(
    session: aiohttp.ClientSession, make: MakeChannel
) -> None:
    async with FakeTelegram(refused_photo_urls=[PHOTO]) as tg:
        channel = await make(tg)
        ref = await channel.send(Message(text="<b>full text</b>", image_url=PHOTO, caption="c"))
        [sent] = tg.messages(CHAT)
        assert sent.kind == "text" and sent.text == "full text"
        assert ref == MessageRef(CHAT, str(sent.message_id))
        assert [c.method for c in tg.calls] == ["sendPhoto", "sendMessage"]


async def test_other_photo_errors_do_not_fall_back(
    fake_telegram: FakeTelegram, make: MakeChannel
) -> None:
    channel = await make(fake_telegram)
    fake_telegram.fail_next(status=403, description="Forbidden: bot was kicked", method="sendPhoto")
    with pytest.raises(PermanentError, match="kicked"):
        await channel.send(Message(text="t", image_url=PHOTO))
    assert [c.method for c in fake_telegram.calls] == ["sendPhoto"]


async def test_edit_text_and_caption(fake_telegram: FakeTelegram, make: MakeChannel) -> None:
    channel = await make(fake_telegram)
    text_ref = await channel.send(Message(text="1 of 5"))
    photo_ref = await channel.send(Message(text="x", image_url=PHOTO, caption="1 of 5"))
    assert text_ref is not None and photo_ref is not None

    await channel.edit(text_ref, Message(text="<b>2 of 5</b>"))
    await channel.edit(photo_ref, Message(text="x", caption="<b>2 of 5</b>"))

    text_msg, photo_msg = fake_telegram.messages(CHAT)
    assert text_msg.text == "2 of 5" and len(text_msg.history) == 1
    assert photo_msg.caption == "2 of 5" and len(photo_msg.history) == 1


async def test_edit_with_same_content_counts_as_success(
    fake_telegram: FakeTelegram, make: MakeChannel
) -> None:
    channel = await make(fake_telegram)
    ref = await channel.send(Message(text="same"))
    assert ref is not None
    await channel.edit(ref, Message(text="same"))
    [call] = fake_telegram.calls_for("editMessageText")
    assert call.status == 400  # Telegram said "not modified"; the channel took it as done


async def test_edit_of_a_missing_message_is_permanent(
    fake_telegram: FakeTelegram, make: MakeChannel
) -> None:
    channel = await make(fake_telegram)
    with pytest.raises(PermanentError, match="not found"):
        await channel.edit(MessageRef(CHAT, "999"), Message(text="x"))
    with pytest.raises(PermanentError, match="not a Telegram message ref"):
        await channel.edit(MessageRef(CHAT, "abc"), Message(text="x"))


async def test_reply_quotes_the_parent(fake_telegram: FakeTelegram, make: MakeChannel) -> None:
    channel = await make(fake_telegram)
    parent = await channel.send(Message(text="card", image_url=PHOTO))
    assert parent is not None
    child = await channel.reply(parent, Message(text="node 3 failed"), broadcast=True)

    card, reply = fake_telegram.messages(CHAT)
    assert reply.reply_to is card
    assert child == MessageRef(CHAT, str(reply.message_id))


@pytest.mark.parametrize("timedelta_mode", [False, True])
async def test_flood_control_is_rate_limited_with_retry_after(
    fake_telegram: FakeTelegram,
    make: MakeChannel,
    monkeypatch: pytest.MonkeyPatch,
    timedelta_mode: bool,
) -> None:
    if timedelta_mode:
        monkeypatch.setenv("PTB_TIMEDELTA", "1")
    else:
        monkeypatch.delenv("PTB_TIMEDELTA", raising=False)
    channel = await make(fake_telegram)
    fake_telegram.fail_next(status=429, retry_after=5)
    with pytest.raises(RetryableError) as caught:
        await channel.send(Message(text="x"))
    assert caught.value.rate_limited and caught.value.retry_after == 5.0


@pytest.mark.parametrize(
    ("status", "description", "expected", "fragment"),
    [
        (400, "Bad Request: chat not found", PermanentError, "chat not found"),
        (400, "Bad Request: can't parse entities", PermanentError, "parse entities"),
        (403, "Forbidden: bot was kicked from the group chat", PermanentError, "kicked"),
        (401, "Unauthorized", PermanentError, "token"),
        (404, "Not Found", PermanentError, "token"),
        (500, "Internal Server Error", RetryableError, "Internal Server Error"),
        (502, "Bad Gateway", RetryableError, "Bad Gateway"),
        (409, "Conflict", PermanentError, "Conflict"),
    ],
)
async def test_failures(
    fake_telegram: FakeTelegram,
    make: MakeChannel,
    status: int,
    description: str,
    expected: type[DeliveryError],
    fragment: str,
) -> None:
    channel = await make(fake_telegram)
    fake_telegram.fail_next(status=status, description=description)
    with pytest.raises(expected) as caught:
        await channel.send(Message(text="x"))
    assert fragment.lower() in caught.value.reason.lower()
    if isinstance(caught.value, RetryableError):
        assert not caught.value.rate_limited


async def test_real_refusals(fake_telegram: FakeTelegram, make: MakeChannel) -> None:
    with pytest.raises(PermanentError, match="token"):
        await (await make(fake_telegram, token="999:wrong-token")).send(Message(text="x"))
    with pytest.raises(PermanentError, match=r"(?i)chat not found"):
        await (await make(fake_telegram, chat_id="-100999")).send(Message(text="x"))


@pytest.mark.parametrize(
    ("make_error", "expected", "fragment"),
    [
        (lambda: ChatMigrated(-100777), PermanentError, "-100777"),
        (lambda: RetryAfter(dt.timedelta(seconds=3)), RetryableError, "flood"),
        (lambda: TimedOut(), RetryableError, "timed out"),
        (lambda: NetworkError(f"httpx.ConnectError: {DEFAULT_TOKEN}"), RetryableError, "***"),
        (lambda: BadRequest(f"Bad Request: {DEFAULT_TOKEN}"), PermanentError, "***"),
        (lambda: InvalidToken(f"The token `{DEFAULT_TOKEN}` was bad"), PermanentError, "token"),
        (lambda: TelegramError("Invalid server response"), RetryableError, "Invalid server"),
    ],
)
def test_classification(
    make_error: Callable[[], TelegramError], expected: type, fragment: str
) -> None:
    error = make_error()
    decided = classify_telegram_error(error, DEFAULT_TOKEN)
    assert type(decided) is expected
    assert fragment in decided.reason
    assert DEFAULT_TOKEN.lower() not in decided.reason.lower()
    if isinstance(error, RetryAfter):
        assert isinstance(decided, RetryableError) and decided.retry_after == 3.0


@pytest.mark.parametrize("refuse", [True, False])
async def test_outage_is_retryable(
    fake_telegram: FakeTelegram, make: MakeChannel, refuse: bool
) -> None:
    channel = await make(fake_telegram)
    await fake_telegram.go_down(refuse=refuse)
    with pytest.raises(RetryableError):
        await channel.send(Message(text="x"))
    await fake_telegram.go_up()
    assert await channel.send(Message(text="x")) is not None


async def test_start_makes_no_request(fake_telegram: FakeTelegram, make: MakeChannel) -> None:
    await fake_telegram.go_down(refuse=True)
    channel = await make(fake_telegram, token="999:wrong-token")
    assert channel.rate_key.startswith("telegram:")
    assert fake_telegram.calls == []


async def test_token_never_leaks(
    fake_telegram: FakeTelegram, make: MakeChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = await make(fake_telegram)
    await channel.send(Message(text="ok"))
    fake_telegram.fail_next(status=400, description=f"Bad Request: echo {DEFAULT_TOKEN} back")
    with pytest.raises(PermanentError) as caught:
        await channel.send(Message(text="x"))
    bad = await make(fake_telegram, token="999:wrong-token")
    with pytest.raises(PermanentError) as refused:
        await bad.send(Message(text="x"))

    assert "bot***" in caplog.text  # the library did log URLs, masked
    for text in (str(caught.value), str(refused.value), caplog.text, repr(channel)):
        assert DEFAULT_TOKEN not in text and "999:wrong-token" not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"chat_id": "1"}, "token"),
        ({"token": "", "chat_id": "1"}, "empty"),
        ({"token": "1:a/b", "chat_id": "1"}, "bot token"),
        ({"token": "1:a", "chat_id": " "}, "empty"),
        ({"token": "1:a", "chat_id": "1", "api_url": "api.telegram.org"}, "http"),
        ({"token": "1:a", "chat_id": "1", "parse_mode": "Markdown"}, "parse_mode"),
    ],
)
def test_settings_errors(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        TelegramSettings.model_validate({"type": "telegram"} | data)


def test_settings_keep_chat_id_and_hide_the_token() -> None:
    settings = TelegramSettings.model_validate(
        {"type": "telegram", "token": "123:sekrit-abc", "chat_id": -100123}
    )
    assert settings.chat_id == -100123 and settings.api_url == "https://api.telegram.org"
    assert "sekrit" not in repr(settings) and "sekrit" not in str(settings)


# --- buttons (chat actions) --------------------------------------------------------------------

RESUME = Button("resume", "Resume", "ma1:" + "r" * 22)
RERUN = Button("rerun", "Re-run", "ma1:" + "n" * 22, style="primary")


def keyboard(*buttons: Button) -> dict[str, Any]:
    return {"inline_keyboard": [[{"text": b.label, "callback_data": b.value} for b in buttons]]}


async def test_buttons_become_one_row_of_callback_buttons(
    fake_telegram: FakeTelegram, make: MakeChannel
) -> None:
    channel = await make(fake_telegram)
    await channel.send(Message(text="<b>failed</b>", buttons=(RESUME, RERUN)))
    await channel.send(Message(text="x", image_url=PHOTO, caption="c", buttons=(RESUME,)))
    await channel.send(Message(text="no buttons"))

    text, photo, plain = fake_telegram.messages(CHAT)
    assert text.reply_markup == keyboard(RESUME, RERUN)
    assert photo.kind == "photo" and photo.reply_markup == keyboard(RESUME)
    assert plain.reply_markup is None and "reply_markup" not in plain.params


async def test_a_refused_photo_keeps_its_buttons_on_the_text(
    session: aiohttp.ClientSession, make: MakeChannel
) -> None:
    async with FakeTelegram(refused_photo_urls=[PHOTO]) as tg:
        channel = await make(tg)
        await channel.send(Message(text="t", image_url=PHOTO, buttons=(RESUME,)))
        [sent] = tg.messages(CHAT)
        assert sent.kind == "text" and sent.reply_markup == keyboard(RESUME)


async def test_an_edit_sends_the_new_keyboard_or_none(
    fake_telegram: FakeTelegram, make: MakeChannel
) -> None:
    channel = await make(fake_telegram)
    text_ref = await channel.send(Message(text="running", buttons=(RESUME,)))
    photo_ref = await channel.send(
        Message(text="x", image_url=PHOTO, caption="running", buttons=(RESUME,))
    )
    assert text_ref is not None and photo_ref is not None

    await channel.edit(text_ref, Message(text="running", buttons=(RERUN,)))
    await channel.edit(photo_ref, Message(text="x", caption="running", buttons=(RESUME, RERUN)))
    text_msg, photo_msg = fake_telegram.messages(CHAT)
    assert text_msg.reply_markup == keyboard(RERUN)
    assert photo_msg.reply_markup == keyboard(RESUME, RERUN)

    await channel.edit(text_ref, Message(text="running"))
    await channel.edit(photo_ref, Message(text="x", caption="running"))
    assert text_msg.reply_markup is None and photo_msg.reply_markup is None
    assert len(text_msg.history) == len(photo_msg.history) == 2


@pytest.mark.parametrize("value", ["", "ma1:" + "x" * 61, "ma1:" + "é" * 31])
async def test_a_button_value_telegram_would_refuse_is_refused_before_any_call(
    fake_telegram: FakeTelegram, make: MakeChannel, value: str
) -> None:
    channel = await make(fake_telegram)
    ref = await channel.send(Message(text="x"))
    assert ref is not None
    button = Button("resume", "Resume", value)
    with pytest.raises(PermanentError, match="1 to 64 bytes"):
        await channel.send(Message(text="x", buttons=(button,)))
    with pytest.raises(PermanentError, match="1 to 64 bytes"):
        await channel.edit(ref, Message(text="y", buttons=(button,)))
    assert [c.method for c in fake_telegram.calls] == ["sendMessage"]


def test_sixty_four_bytes_are_taken() -> None:
    markup = inline_keyboard([Button("cancel", "Cancel", "c" * 64)])
    assert markup is not None and markup.inline_keyboard[0][0].callback_data == "c" * 64
    assert inline_keyboard([]) is None


async def test_remove_buttons_edits_only_the_markup(
    fake_telegram: FakeTelegram, make: MakeChannel
) -> None:
    channel = await make(fake_telegram)
    text_ref = await channel.send(Message(text="<b>t</b>", buttons=(RESUME,)))
    photo_ref = await channel.send(Message(text="x", image_url=PHOTO, buttons=(RESUME,)))
    assert text_ref is not None and photo_ref is not None

    await channel.remove_buttons(text_ref)
    await channel.remove_buttons(photo_ref)
    await channel.remove_buttons(text_ref)  # none left: "not modified" is success

    text_msg, photo_msg = fake_telegram.messages(CHAT)
    assert text_msg.reply_markup is None and text_msg.text == "t"
    assert photo_msg.reply_markup is None and photo_msg.caption == "x"
    calls = fake_telegram.calls_for("editMessageReplyMarkup")
    assert [c.status for c in calls] == [200, 200, 400]
    assert all("reply_markup" not in c.body for c in calls)
    with pytest.raises(PermanentError, match="not found"):
        await channel.remove_buttons(MessageRef(CHAT, "999"))


async def test_answer_callback_query(fake_telegram: FakeTelegram, make: MakeChannel) -> None:
    channel = await make(fake_telegram)
    ref = await channel.send(Message(text="t", buttons=(RESUME,)))
    assert ref is not None
    update = fake_telegram.press(CHAT, int(ref.message_id))
    query_id = update["callback_query"]["id"]

    await channel.answer_callback_query(query_id, "Resumed. " + "x" * 300)
    [answer] = fake_telegram.queries[query_id].answers
    assert answer["text"] == ("Resumed. " + "x" * 300)[:200]
    assert str(answer["show_alert"]).lower() == "false"
    with pytest.raises(PermanentError, match=r"(?i)query is too old"):
        await channel.answer_callback_query(query_id, "again")


async def test_set_webhook(fake_telegram: FakeTelegram, make: MakeChannel) -> None:
    channel = await make(fake_telegram)
    secret = "s3cret_token-0123456789"
    await channel.set_webhook(
        "https://relay.test/actions/telegram?bot=ops", secret, ["callback_query"]
    )
    hook = fake_telegram.webhooks[DEFAULT_TOKEN]
    assert hook.url == "https://relay.test/actions/telegram?bot=ops"
    assert (hook.secret_token, hook.allowed_updates) == (secret, ["callback_query"])
    assert secret not in repr(fake_telegram.calls)
    with pytest.raises(PermanentError, match=r"(?i)https url"):
        await channel.set_webhook("http://relay.test/hook", secret, ["callback_query"])
