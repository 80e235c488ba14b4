"""The hostile-text corpus, end to end: through the real app to every channel type's fake.

Each text becomes a YouTube title, status message and error of a failed run. Every delivery must
succeed (the strict fakes refuse bad Slack blocks and bad Telegram HTML), and every destination must
show the text as text: no Slack mention or foreign link, no Telegram or email markup beyond the
built-in template's, no extra email header, valid JSON for the webhook and the file. The same
corpus through user templates (the README's among them) reaches Slack and Telegram as text too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.channels.base import Message
from relay.channels.slack import SlackChannel, SlackSettings
from relay.channels.telegram import TelegramChannel, TelegramSettings
from relay.events import Event
from relay.render import Renderer, TemplateSettings
from tests.conftest import read_jsonl, sample
from tests.fakes.slack import DEFAULT_TOKEN as SLACK_TOKEN
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import DEFAULT_CHAT_ID, FakeTelegram
from tests.fakes.telegram import DEFAULT_TOKEN as TELEGRAM_TOKEN
from tests.relay_rig import Client, Rig, running_rig
from tests.render.helpers import AGENTS, assert_no_slack_markup_from_event, mrkdwn_texts
from tests.render.test_hostile import (
    HOSTILE,
    USER_TEMPLATES,
    link_targets,
    literal,
    readme_templates,
)

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

CHANNELS = ("slack-api", "slack-hook", "telegram", "email", "hook", "archive")
MAIL_HEADERS = {
    "subject", "from", "to", "date", "message-id", "auto-submitted", "x-auto-response-suppress",
    "in-reply-to", "references", "content-type", "mime-version",
}  # fmt: skip
LOOKALIKES = str.maketrans("∗ˍ∼ˋ", "*_~`", "\u00ad\u200b")
"""Undoes Slack's look-alike characters for ``*_~` `` (and the soft hyphen before a ``>``, the
zero-width spaces that keep URLs and names from being linked)."""
TELEGRAM_ENTITIES = {"bold", "italic", "code", "pre", "text_link", "underline", "strikethrough"}


def hostile_event(index: int, text: str) -> dict[str, Any]:
    payload = sample("run_finished_completed_youtube")
    payload.update(status="failed", run_id=f"hostile-{index}", status_message=text)
    payload["triggered_by"]["video_title"] = text
    payload["errors"] = [text, {"message": text}]
    return payload


def visible(text: str) -> str:
    """What a reader sees, whitespace-normalised (Slack entities and look-alikes undone)."""
    plain = text.translate(LOOKALIKES)
    plain = plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(plain.split())


def check_slack(rig: Rig, via_webhook: bool) -> None:
    messages = [m for m in rig.slack.messages("#video-alerts") if m.via_webhook == via_webhook]
    assert len(messages) == len(HOSTILE)
    for message in messages:
        for mrkdwn in mrkdwn_texts(message):
            for inner in re.findall(r"<([^>]*)>", mrkdwn):
                assert re.match(r"https?://", inner), f"<{inner}> got through"
            assert not re.search(r"&(?!(?:amp|lt|gt);)", mrkdwn), "a raw & got through"
    seen = " ".join(visible("\n".join(mrkdwn_texts(m))) for m in messages)
    for text in HOSTILE:
        assert literal(text) in seen


def check_telegram(rig: Rig) -> None:
    messages = rig.telegram.messages(DEFAULT_CHAT_ID)
    assert len(messages) == len(HOSTILE)
    for message in messages:
        for entity in message.entities:
            assert entity["type"] in TELEGRAM_ENTITIES, entity
            if entity["type"] == "text_link":
                assert re.match(r"https?://", entity["url"])
    seen = " ".join(" ".join((m.content or "").split()) for m in messages)
    for text in HOSTILE:
        assert literal(text) in seen


def check_email(rig: Rig) -> None:
    assert len(rig.smtp.mails) == len(HOSTILE)
    texts = []
    for mail in rig.smtp.mails:
        assert isinstance(mail, EmailMessage)
        assert {name.lower() for name in mail} <= MAIL_HEADERS, mail.keys()
        assert mail["To"] == "leads@example.com" and "\n" not in str(mail["Subject"])
        html, plain = mail.get_body(("html",)), mail.get_body(("plain",))
        assert html is not None and plain is not None
        assert "<script" not in html.get_content().lower()
        texts.append(" ".join(plain.get_content().split()))
    assert all(e.rcpt_tos == ["leads@example.com"] for e in rig.smtp.envelopes)
    seen = " ".join(texts)
    for text in HOSTILE:
        assert literal(text) in seen


def check_json_destinations(rig: Rig, folder: Path) -> None:
    bodies = [json.loads(body) for _, body in rig.endpoint.requests]
    lines = read_jsonl(folder / "deliveries.jsonl")
    for documents in (bodies, lines):
        assert len(documents) == len(HOSTILE)
        seen = " ".join(" ".join(d["text"].split()) for d in documents)
        for text in HOSTILE:
            assert literal(text) in seen


async def test_hostile_corpus_is_delivered_as_text_on_every_channel(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    async with running_rig(tmp_path, fake_slack, fake_telegram, aiohttp_client) as rig:
        for index, text in enumerate(HOSTILE):
            assert await rig.post(hostile_event(index, text)) == 202
        states = await rig.settle()
        assert states == {(channel, "sent"): len(HOSTILE) for channel in CHANNELS}, states
        check_slack(rig, via_webhook=False)
        check_slack(rig, via_webhook=True)
        check_telegram(rig)
        check_email(rig)
        check_json_destinations(rig, tmp_path)


def user_renderer() -> tuple[Renderer, list[str]]:
    templates = {**USER_TEMPLATES, **{f"readme:{n}": t for n, t in readme_templates().items()}}
    settings = {name: TemplateSettings.model_validate(t) for name, t in templates.items()}
    return Renderer(settings, AGENTS), sorted(templates)


def render_for(renderer: Renderer, kind: str, template: str, payload: dict[str, Any]) -> Message:
    channel = SlackChannel if kind == "slack" else TelegramChannel
    return renderer.render(
        kind, template, Event.model_validate(payload), event_id="e1", route="r", channel="c",
        limits=channel.limits, run_started_at=1.0, now=2.0,
    )  # fmt: skip


async def started_channels(
    slack: FakeSlack, telegram: FakeTelegram, session: aiohttp.ClientSession
) -> tuple[SlackChannel, SlackChannel, TelegramChannel]:
    api = SlackChannel(
        "slack-api",
        SlackSettings.model_validate(
            {"type": "slack", "token": SLACK_TOKEN, "channel": "#video-alerts"}
            | {"api_url": slack.api_url}
        ),
        Path("."),
    )
    hook = SlackChannel(
        "slack-hook",
        SlackSettings.model_validate({"type": "slack", "webhook_url": slack.webhook_url()}),
        Path("."),
    )
    settings = {"type": "telegram", "token": TELEGRAM_TOKEN, "chat_id": str(DEFAULT_CHAT_ID)}
    bot = TelegramChannel(
        "telegram", TelegramSettings.model_validate(settings | {"api_url": telegram.url}), Path(".")
    )
    for channel in (api, hook, bot):
        await channel.start(session)
    return api, hook, bot


async def test_hostile_corpus_through_user_templates_reaches_slack_and_telegram_as_text(
    fake_slack: FakeSlack, fake_telegram: FakeTelegram
) -> None:
    renderer, templates = user_renderer()
    sent: list[tuple[str, Message, set[str]]] = []  # text, benign rendering, links allowed
    async with aiohttp.ClientSession() as session:
        channels = await started_channels(fake_slack, fake_telegram, session)
        api, hook, bot = channels
        for template in templates:
            for index, text in enumerate(HOSTILE):
                payload = hostile_event(index, text)
                slack = render_for(renderer, "slack", template, payload)
                await api.send(slack)
                await hook.send(slack)
                await bot.send(render_for(renderer, "telegram", template, payload))
                benign = render_for(renderer, "slack", template, hostile_event(index, "benign"))
                sent.append((text, benign, link_targets(payload)))
        for channel in channels:
            await channel.close()

    received = fake_slack.messages("#video-alerts")
    assert [m.via_webhook for m in received] == [False, True] * len(sent)
    for (text, benign, targets), message in zip(
        [s for s in sent for _ in "ab"], received, strict=True
    ):
        assert_no_slack_markup_from_event(message, benign, targets)
        assert literal(text)[:20] in visible("\n".join(mrkdwn_texts(message)))
    check_telegram_entities(fake_telegram, expected=len(sent))


def check_telegram_entities(telegram: FakeTelegram, expected: int) -> None:
    messages = telegram.messages(DEFAULT_CHAT_ID)
    assert len(messages) == expected
    for message in messages:
        for entity in message.entities:
            assert entity["type"] in TELEGRAM_ENTITIES, entity
            if entity["type"] == "text_link":
                assert re.match(r"https://(www\.youtube|storage\.example)\.com/", entity["url"])
