"""FakeTelegram driven through python-telegram-bot's real ``Bot``."""

from __future__ import annotations

import asyncio
import datetime as dtm
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
)
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut

from tests.fakes.fixtures import clear_proxy_env
from tests.fakes.telegram import FakeTelegram, TelegramChat
from tests.fakes.telegram_html import EntityParseError, parse_html

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:TEST-token"
CHAT = -1001234567890


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=fake_telegram.base_url) as started:
        yield started


async def bad_request(call: Any) -> str:
    with pytest.raises(BadRequest) as info:
        await call
    return info.value.message


async def test_get_me_on_start_with_the_token_masked(fake_telegram: FakeTelegram, bot: Bot) -> None:
    assert bot.username == "relay_test_bot"
    [call] = fake_telegram.calls
    assert (call.method, call.path, call.status) == ("getMe", "/bot<redacted>/getMe", 200)
    assert TOKEN not in repr(call)


async def test_send_message_html(fake_telegram: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(
        CHAT,
        '<b>Run</b> done &amp; <a href="https://x.test/?a=1&amp;b=2">link</a>',
        parse_mode="HTML",
        message_thread_id=42,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    assert sent.message_id == 1
    assert sent.chat.id == CHAT and sent.chat.type == "supergroup"
    assert sent.text == "Run done & link"
    assert sent.message_thread_id == 42
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 0, 3),
        ("text_link", 11, 4),
    ]
    assert sent.entities[1].url == "https://x.test/?a=1&b=2"
    assert isinstance(sent.date, dtm.datetime)

    [message] = fake_telegram.messages(CHAT)
    assert message.text == "Run done & link"
    assert message.raw is not None and message.raw.startswith("<b>Run</b>")
    body = fake_telegram.calls[-1].body
    assert body["message_thread_id"] == "42"
    assert body["link_preview_options"] == '{"is_disabled": true}'


async def test_message_ids_increase_per_chat(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    chats = [TelegramChat(CHAT), TelegramChat(555, "private", "Ann")]
    async with FakeTelegram(chats=chats) as fake, Bot(TOKEN, base_url=fake.base_url) as bot:
        ids = [(await bot.send_message(chat, "x")).message_id for chat in (CHAT, CHAT, 555, CHAT)]
        assert ids == [1, 2, 1, 3]
        assert [m.message_id for m in fake.messages(str(CHAT))] == [1, 2, 3]


async def test_replies(bot: Bot) -> None:
    parent = await bot.send_message(CHAT, "parent")
    reply = await bot.send_message(
        CHAT, "reply", reply_parameters=ReplyParameters(parent.message_id)
    )
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.message_id == parent.message_id
    legacy = await bot.send_message(CHAT, "legacy", reply_to_message_id=parent.message_id)
    assert legacy.reply_to_message is not None
    assert (
        await bad_request(bot.send_message(CHAT, "x", reply_to_message_id=99))
        == "Message to be replied not found"
    )
    lenient = await bot.send_message(
        CHAT, "x", reply_parameters=ReplyParameters(99, allow_sending_without_reply=True)
    )
    assert lenient.reply_to_message is None


async def test_edit_text_keeps_history(fake_telegram: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "<b>running</b>", parse_mode="HTML")
    edited = await bot.edit_message_text(
        "<b>done</b>", chat_id=CHAT, message_id=sent.message_id, parse_mode="HTML"
    )
    assert isinstance(edited, Message)
    assert edited.text == "done" and edited.edit_date is not None
    [message] = fake_telegram.messages(CHAT)
    assert message.text == "done"
    assert [v.content for v in message.history] == ["running"]


async def test_edit_errors(bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "<b>same</b>", parse_mode="HTML")
    same = bot.edit_message_text(
        "<strong>same</strong>", chat_id=CHAT, message_id=sent.message_id, parse_mode="HTML"
    )
    assert (await bad_request(same)).startswith("Message is not modified")
    other_markup = InlineKeyboardMarkup([[InlineKeyboardButton("open", url="https://x.test")]])
    with_markup = await bot.edit_message_text(
        "<b>same</b>",
        chat_id=CHAT,
        message_id=sent.message_id,
        parse_mode="HTML",
        reply_markup=other_markup,
    )
    assert isinstance(with_markup, Message) and with_markup.reply_markup == other_markup
    missing = bot.edit_message_text("x", chat_id=CHAT, message_id=999)
    assert await bad_request(missing) == "Message to edit not found"
    caption_of_text = bot.edit_message_caption(
        chat_id=CHAT, message_id=sent.message_id, caption="c"
    )
    assert await bad_request(caption_of_text) == "There is no caption in the message to edit"


async def test_send_photo_and_edit_caption(fake_telegram: FakeTelegram, bot: Bot) -> None:
    url = "https://cdn.test/thumb.jpg"
    photo = await bot.send_photo(CHAT, photo=url, caption="<i>thumb</i>", parse_mode="HTML")
    assert photo.caption == "thumb"
    assert photo.caption_entities[0].type == "italic"
    assert photo.photo[-1].width == 1280
    edited = await bot.edit_message_caption(
        chat_id=CHAT, message_id=photo.message_id, caption="new"
    )
    assert isinstance(edited, Message) and edited.caption == "new"
    not_modified = bot.edit_message_caption(
        chat_id=CHAT, message_id=photo.message_id, caption="new"
    )
    assert (await bad_request(not_modified)).startswith("Message is not modified")
    text_of_photo = bot.edit_message_text("t", chat_id=CHAT, message_id=photo.message_id)
    assert await bad_request(text_of_photo) == "There is no text in the message to edit"

    again = await bot.send_photo(CHAT, photo=photo.photo[-1].file_id)
    uploaded = await bot.send_photo(CHAT, photo=b"\x89PNG fake bytes")
    stored = fake_telegram.messages(CHAT)
    assert [m.photo for m in stored[:2]] == [url, photo.photo[-1].file_id]
    assert stored[2].photo is not None and stored[2].photo.startswith("upload:")
    assert fake_telegram.calls[-1].headers["Content-Type"].startswith("multipart/form-data")
    assert again.message_id < uploaded.message_id
    assert [v.content for v in stored[0].history] == ["thumb"]


async def test_photo_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    refused = "https://cdn.test/page.html"
    async with (
        FakeTelegram(refused_photo_urls=[refused]) as fake,
        Bot(TOKEN, base_url=fake.base_url) as bot,
    ):
        assert (
            await bad_request(bot.send_photo(CHAT, photo=refused))
            == "Wrong type of the web page content"
        )
        assert (
            await bad_request(bot.send_photo(CHAT, photo="AgACnope"))
            == "Wrong file identifier/http url specified"
        )
        too_long = bot.send_photo(CHAT, photo="https://cdn.test/a.jpg", caption="c" * 1025)
        assert await bad_request(too_long) == "Message caption is too long"
        assert (
            await bot.send_photo(CHAT, photo="https://cdn.test/a.jpg", caption="c" * 1024)
        ).caption


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a < b", 'unsupported start tag "" at byte offset 2'),
        ("fish & chips", 'unescaped "&" at byte offset 5'),
        ("é &nbsp;", 'unescaped "&" at byte offset 3'),
        ("<b>open", 'can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "unexpected end tag at byte offset 1"),
        ("<foo>x</foo>", 'unsupported start tag "foo" at byte offset 0'),
        ("line<br/>", 'unsupported start tag "br" at byte offset 4'),
        ("<span>x</span>", 'tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<a href="https://x.test>x</a>', "unclosed start tag at byte offset 0"),
        ('<a href="?a=1&b=2">x</a>', 'unescaped "&" in an attribute of the tag at byte offset 0'),
    ],
)
async def test_html_errors(bot: Bot, text: str, error: str) -> None:
    message = await bad_request(bot.send_message(CHAT, text, parse_mode="HTML"))
    assert message.lower() == f"can't parse entities: {error}".lower()


@pytest.mark.parametrize(
    ("html", "plain", "entities"),
    [
        ("a > b &lt;&gt;&quot;&amp;", 'a > b <>"&', []),
        ("&#128512; &#x41;", "😀 A", []),
        ("😀<b>x</b>", "😀x", [{"type": "bold", "offset": 2, "length": 1}]),
        (
            "<B>x</B><em>y</em><ins>z</ins><del>w</del>",
            "xyzw",
            ["bold", "italic", "underline", "strikethrough"],
        ),
        (
            '<pre><code class="language-python">x</code></pre>',
            "x",
            [{"type": "pre", "offset": 0, "length": 1, "language": "python"}],
        ),
        (
            '<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>',
            "st",
            ["spoiler", "spoiler"],
        ),
        (
            "<blockquote expandable>q</blockquote><blockquote>r</blockquote>",
            "qr",
            ["expandable_blockquote", "blockquote"],
        ),
        ("<b>bold <i>both</i></b>", "bold both", ["bold", "italic"]),
        ("plain <b></b>text", "plain text", []),
    ],
)
def test_html_parsing(html: str, plain: str, entities: list[Any]) -> None:
    text, parsed = parse_html(html)
    assert text == plain
    if entities and isinstance(entities[0], str):
        assert [e["type"] for e in parsed] == entities
    else:
        assert parsed == entities


def test_html_parse_error_type() -> None:
    with pytest.raises(EntityParseError):
        parse_html("<b>")


async def test_length_limits(bot: Bot) -> None:
    assert (await bot.send_message(CHAT, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")).text
    assert await bad_request(bot.send_message(CHAT, "x" * 4097)) == "Message is too long"
    assert await bad_request(bot.send_message(CHAT, "😀" * 2049)) == "Message is too long"
    assert (
        await bad_request(bot.send_message(CHAT, "<b> </b>", parse_mode="HTML"))
        == "Message text is empty"
    )


async def test_other_parse_modes(bot: Bot) -> None:
    assert (await bot.send_message(CHAT, "*x* < y", parse_mode="MarkdownV2")).text == "*x* < y"
    assert (
        await bad_request(bot.send_message(CHAT, "x", parse_mode="BBCode"))
        == "Unsupported parse_mode"
    )


async def test_chat_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    chats = [
        TelegramChat(CHAT),
        TelegramChat(-100777, topics=frozenset({5})),
        TelegramChat(-42, "group"),
    ]
    async with (
        FakeTelegram(chats=chats, kicked=[-42]) as fake,
        Bot(TOKEN, base_url=fake.base_url) as bot,
    ):
        assert await bad_request(bot.send_message(-1009, "x")) == "Chat not found"
        with pytest.raises(Forbidden, match="bot was kicked from the group chat"):
            await bot.send_message(-42, "x")
        assert (
            await bad_request(bot.send_message(-100777, "x", message_thread_id=6))
            == "Message thread not found"
        )
        assert (await bot.send_message(-100777, "x", message_thread_id=5)).message_thread_id == 5
        assert fake.messages(-42) == []


async def test_get_chat(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    chats = [TelegramChat(CHAT, topics=frozenset({5})), TelegramChat(-42, "group", "Ops")]
    async with (
        FakeTelegram(chats=chats, kicked=[-42]) as fake,
        Bot(TOKEN, base_url=fake.base_url) as bot,
    ):
        chat = await bot.get_chat(CHAT)
        assert (chat.id, chat.type, chat.title, chat.is_forum) == (
            CHAT,
            "supergroup",
            "Video alerts",
            True,
        )
        assert await bad_request(bot.get_chat(-1009)) == "Chat not found"
        with pytest.raises(Forbidden, match="bot was kicked from the group chat"):
            await bot.get_chat(-42)
        assert [call.method for call in fake.calls] == ["getMe", *["getChat"] * 3]


async def test_unknown_token_and_method(
    fake_telegram: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=fake_telegram.base_url):
            pass
    assert fake_telegram.calls[-1].status == 401
    async with session.post(
        f"{fake_telegram.base_url}{TOKEN}/sendNonsense", data={"a": "1"}
    ) as response:
        assert response.status == 404
        assert await response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    async with session.post(f"{fake_telegram.base_url}999:WRONG/getMe") as response:
        assert await response.json() == {
            "ok": False,
            "error_code": 401,
            "description": "Unauthorized",
        }


async def test_json_bodies_work_too(
    fake_telegram: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    url = f"{fake_telegram.base_url}{TOKEN}/sendmessage"
    async with session.post(
        url, json={"chat_id": CHAT, "text": "hi", "message_thread_id": 3}
    ) as response:
        answer = await response.json()
    assert answer["ok"] is True
    assert answer["result"]["message_thread_id"] == 3
    assert fake_telegram.calls[-1].method == "sendMessage"


async def test_flood_control_then_recovery(
    fake_telegram: FakeTelegram, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    fake_telegram.fail_next(1, retry_after=3, method="sendMessage")
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(CHAT, "x")
    assert info.value.retry_after == dtm.timedelta(seconds=3)
    assert fake_telegram.calls[-1].response["parameters"] == {"retry_after": 3}
    assert (await bot.send_message(CHAT, "x")).message_id == 1


async def test_server_errors_and_fault_of_choice(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake_telegram.fail_next(1, status=502)
    with pytest.raises(NetworkError, match="Bad Gateway") as info:
        await bot.send_message(CHAT, "x")
    assert not isinstance(info.value, BadRequest | TimedOut)
    fake_telegram.fail_next(1, status=403, description="Forbidden: bot was blocked by the user")
    with pytest.raises(Forbidden):
        await bot.send_message(CHAT, "x")
    assert fake_telegram.messages(CHAT) == []


async def test_down_mode(fake_telegram: FakeTelegram, bot: Bot) -> None:
    await fake_telegram.go_down()
    with pytest.raises(NetworkError) as dropped:
        await bot.send_message(CHAT, "x")
    assert not isinstance(dropped.value, BadRequest)
    await fake_telegram.go_down(refuse=True)
    with pytest.raises(NetworkError):
        await bot.send_message(CHAT, "x")
    await fake_telegram.go_up()
    assert (await bot.send_message(CHAT, "back")).text == "back"
    assert [c.status for c in fake_telegram.calls_for("sendMessage")][-1] == 200


async def test_wait_for(fake_telegram: FakeTelegram, bot: Bot) -> None:
    task = asyncio.create_task(bot.send_message(CHAT, "later"))
    [call] = await fake_telegram.wait_for(1, method="sendMessage", timeout=5)
    assert call.body["text"] == "later"
    await task
    with pytest.raises(TimeoutError):
        await fake_telegram.wait_for(lambda: len(fake_telegram.messages(CHAT)) > 1, timeout=0.05)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def test_runs_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.telegram",
        "--port",
        "0",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            first = (await proc.stdout.readline()).decode()
            assert first.startswith("fake telegram listening on http://127.0.0.1:")
            async with Bot(TOKEN, base_url=first.split()[-1] + "/bot") as bot:
                await bot.send_message(CHAT, "by hand")
            while "sendMessage" not in (line := (await proc.stdout.readline()).decode()):
                assert line, "the fake exited"
        assert "-> 200" in line and "by hand" in line and TOKEN not in line
    finally:
        proc.terminate()
        await proc.wait()
