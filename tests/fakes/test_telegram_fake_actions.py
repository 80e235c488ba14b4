"""FakeTelegram's side of chat actions: strict inline keyboards, presses, answerCallbackQuery,
editMessageReplyMarkup and setWebhook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup

from tests.fakes.fixtures import clear_proxy_env
from tests.fakes.telegram import DEFAULT_CHAT_ID, DEFAULT_TOKEN, FakeTelegram

CHAT = DEFAULT_CHAT_ID
KEYBOARD = {"inline_keyboard": [[{"text": "Resume", "callback_data": "ma1:abc"}]]}


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(DEFAULT_TOKEN, base_url=fake_telegram.base_url) as started:
        yield started


async def call(telegram: FakeTelegram, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """A raw JSON call (shapes python-telegram-bot would never send)."""
    async with aiohttp.ClientSession() as session:
        url = f"{telegram.base_url}{DEFAULT_TOKEN}/{method}"
        async with session.post(url, json=body) as response:
            answer: dict[str, Any] = await response.json()
            return answer


@pytest.mark.parametrize(
    ("markup", "description"),
    [
        ({"keyboard": [[{"text": "a"}]]}, "unsupported reply markup"),
        ({"inline_keyboard": [{"text": "a", "callback_data": "x"}]}, "Array of Arrays"),
        ({"inline_keyboard": [[{"text": "", "callback_data": "x"}]]}, "Text must be non-empty"),
        ({"inline_keyboard": [[{"text": "a"}]]}, "Text buttons are unallowed"),
        ({"inline_keyboard": [[{"text": "a", "callback_data": ""}]]}, "BUTTON_DATA_INVALID"),
        ({"inline_keyboard": [[{"text": "a", "callback_data": "x" * 65}]]}, "BUTTON_DATA_INVALID"),
        ({"inline_keyboard": [[{"text": "a", "callback_data": "é" * 33}]]}, "BUTTON_DATA_INVALID"),
        (
            {"inline_keyboard": [[{"text": "a", "callback_data": "x", "url": "https://x.test"}]]},
            "Text buttons are unallowed",
        ),
        ({"inline_keyboard": [[{"text": "a", "callback_data": "x", "pay": True}]]}, "unknown"),
        ({"inline_keyboard": [[{"text": "a", "url": "javascript:x"}]]}, "BUTTON_URL_INVALID"),
        ({"inline_keyboard": [[{"text": "a", "callback_data": "x"}] * 9]}, "too many buttons"),
        ("{not json", "can't parse reply keyboard markup"),
    ],
)
async def test_malformed_keyboards_are_refused(
    fake_telegram: FakeTelegram, markup: Any, description: str
) -> None:
    answer = await call(
        fake_telegram, "sendMessage", {"chat_id": CHAT, "text": "t", "reply_markup": markup}
    )
    assert answer["ok"] is False and answer["error_code"] == 400
    assert description in answer["description"]
    assert fake_telegram.messages(CHAT) == []


async def test_a_keyboard_is_recorded_with_the_message(
    fake_telegram: FakeTelegram, bot: Bot
) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Resume", callback_data="ma1:abc")]])
    sent = await bot.send_message(CHAT, "t", reply_markup=markup)
    assert sent.reply_markup == markup
    [message] = fake_telegram.messages(CHAT)
    assert message.reply_markup == KEYBOARD


async def test_edit_reply_markup(fake_telegram: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(
        CHAT,
        "t",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("R", callback_data="ma1:a")]]),
    )
    edited = await bot.edit_message_reply_markup(chat_id=CHAT, message_id=sent.message_id)
    [message] = fake_telegram.messages(CHAT)
    assert message.reply_markup is None and message.text == "t"
    assert len(message.history) == 1 and message.history[0].reply_markup is not None
    assert not isinstance(edited, bool) and edited.reply_markup is None

    again = await call(
        fake_telegram, "editMessageReplyMarkup", {"chat_id": CHAT, "message_id": sent.message_id}
    )
    assert "message is not modified" in again["description"]
    missing = await call(
        fake_telegram, "editMessageReplyMarkup", {"chat_id": CHAT, "message_id": 9}
    )
    assert missing["description"] == "Bad Request: message to edit not found"


async def test_a_press_is_answered_once(fake_telegram: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(
        CHAT,
        "t",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("R", callback_data="ma1:a")]]),
    )
    update = fake_telegram.press(CHAT, sent.message_id, user_id=7, username=None)
    query = update["callback_query"]
    assert query["data"] == "ma1:a" and query["from"] == {
        "id": 7,
        "is_bot": False,
        "first_name": "Alice",
    }
    assert query["message"]["message_id"] == sent.message_id

    assert await bot.answer_callback_query(query["id"], text="Done", show_alert=False)
    assert fake_telegram.queries[query["id"]].answers[0]["text"] == "Done"
    twice = await call(fake_telegram, "answerCallbackQuery", {"callback_query_id": query["id"]})
    unknown = await call(fake_telegram, "answerCallbackQuery", {"callback_query_id": "42"})
    long = fake_telegram.press(CHAT, sent.message_id)["callback_query"]["id"]
    too_long = await call(
        fake_telegram, "answerCallbackQuery", {"callback_query_id": long, "text": "x" * 201}
    )
    assert "query is too old" in twice["description"]
    assert "query is too old" in unknown["description"]
    assert too_long["description"] == "Bad Request: MESSAGE_TOO_LONG"


async def test_a_press_is_answered_only_by_its_bot(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    other = "999:OTHER-token"
    async with FakeTelegram(tokens=(DEFAULT_TOKEN, other)) as telegram:
        async with Bot(DEFAULT_TOKEN, base_url=telegram.base_url) as first:
            sent = await first.send_message(
                CHAT,
                "t",
                reply_markup=InlineKeyboardMarkup(
                    [[InlineKeyboardButton("R", callback_data="ma1:a")]]
                ),
            )
        query_id = telegram.press(CHAT, sent.message_id)["callback_query"]["id"]
        async with aiohttp.ClientSession() as session:
            url = f"{telegram.base_url}{other}/answerCallbackQuery"
            async with session.post(url, json={"callback_query_id": query_id}) as response:
                assert response.status == 400
        assert telegram.queries[query_id].answers == []


async def test_set_webhook_per_bot(fake_telegram: FakeTelegram, bot: Bot) -> None:
    secret = "A" * 16
    url = "https://relay.test/actions/telegram?bot=ops"
    assert await bot.set_webhook(url, secret_token=secret, allowed_updates=["callback_query"])
    hook = fake_telegram.webhooks[DEFAULT_TOKEN]
    assert (hook.url, hook.secret_token, hook.allowed_updates) == (
        url,
        secret,
        ["callback_query"],
    )
    [set_call] = fake_telegram.calls_for("setWebhook")
    assert set_call.body["secret_token"] == "<redacted>"

    refusals = [
        {"url": "http://relay.test/x"},
        {"url": "https://relay.test/x", "secret_token": "has space"},
        {"url": "https://relay.test/x", "allowed_updates": '{"a": 1}'},
    ]
    for body in refusals:
        answer = await call(fake_telegram, "setWebhook", body)
        assert answer["error_code"] == 400, body
    assert fake_telegram.webhooks[DEFAULT_TOKEN].url == url

    assert await bot.set_webhook("")  # an empty URL removes it
    assert DEFAULT_TOKEN not in fake_telegram.webhooks
