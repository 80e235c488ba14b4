"""Hostile event text (YouTube title, status message, errors) must render as literal text."""

from __future__ import annotations

import html
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.channels.base import Message
from relay.render import Renderer
from relay.render.limits import measure
from tests.render.helpers import (
    KINDS,
    LIMITS,
    TELEGRAM_TAGS,
    assert_well_formed,
    html_tags,
    mrkdwn_texts,
    render,
    renderer,
    sample,
)

HOSTILE = [
    "<!channel> free money",
    "<@U024BE7LH>",
    "<https://evil.example|click>",
    "&amp;",
    '<b>x</b><a href="x">',
    "*bold* _it_ ~s~",
    "Hello\r\nBcc: victim@example.com",
    "W" * 10_000,
    "🎉 party 👨‍👩‍👧 family 🇫🇷",
    "שלום עולם مرحبا بالعالم",
    "> quoted `code` </code></b>",
    "<!here|here> <#C024BE7LH> <!subteam^S1>",
    "\u202eevil\u2066 override",
    "{{ 7 * 7 }} {% raw %}",
]
LINK_TARGETS = re.compile(r"<(https?://[^|>]*)")
FORMATTING = re.compile(r"(?<![\w*])\*\w+\*|(?<![\w_])_\w+_|~\w+~")


@pytest.fixture(scope="module")
def default() -> Renderer:
    return renderer()


def hostile_event(text: str) -> dict[str, Any]:
    payload = sample("run_finished_completed_youtube")
    payload["status"] = "failed"
    payload["triggered_by"]["video_title"] = text
    payload["status_message"] = text
    payload["errors"] = [text, {"message": text}]
    return payload


def literal(text: str) -> str:
    """The part of ``text`` a reader must see verbatim (first line-ish, before truncation)."""
    return " ".join(text.replace("\u202e", "").replace("\u2066", "").split())[:40]


def slack_visible(text: str) -> str:
    lookalikes: dict[str, str | int | None] = {
        "∗": "*",
        "ˍ": "_",
        "∼": "~",
        "ˋ": "`",
        "\u00ad": None,
    }
    plain = text.translate(str.maketrans(lookalikes))
    return plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def check_limits(message: Message, kind: str) -> None:
    limits = LIMITS[kind]
    assert measure(message.text) <= limits.text
    assert message.subject is not None
    assert "\n" not in message.subject and "\r" not in message.subject
    if limits.subject:
        assert measure(message.subject) <= limits.subject
    if message.caption is not None:
        assert limits.caption is not None and measure(message.caption) <= limits.caption
    for block in message.blocks or []:
        limit = 150 if block["type"] == "header" else 3000
        for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            assert part is None or measure(part["text"]) <= limit


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: t[:20])
def test_slack(default: Renderer, text: str) -> None:
    benign = render(default, "slack", hostile_event("benign title"))
    message = render(default, "slack", hostile_event(text))
    check_limits(message, "slack")
    assert message.blocks is not None and benign.blocks is not None
    assert message.blocks[0] == benign.blocks[0]  # header: no event text in it
    mrkdwn = "\n".join(mrkdwn_texts(message))
    assert LINK_TARGETS.findall(mrkdwn) == LINK_TARGETS.findall("\n".join(mrkdwn_texts(benign)))
    assert not re.search(r"<[!@#]", mrkdwn), "a mention or channel link got through"
    assert len(re.findall(r"<", mrkdwn)) == len(LINK_TARGETS.findall(mrkdwn)), "markup got through"
    assert not re.search(r"&(?!(?:amp|lt|gt);)", mrkdwn), "a raw & got through"
    for formatted in FORMATTING.findall(text):
        assert formatted not in mrkdwn, "mrkdwn formatting got through"
    assert not re.search(r"^\s*(&gt;|＞)", mrkdwn, re.MULTILINE), "a block quote got through"
    assert literal(text) in slack_visible(mrkdwn)


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: t[:20])
def test_telegram(default: Renderer, text: str) -> None:
    benign = render(default, "telegram", hostile_event("benign title"))
    message = render(default, "telegram", hostile_event(text))
    check_limits(message, "telegram")
    for markup in (message.text, message.caption or ""):
        assert_well_formed(markup)
        assert {tag for tag, _ in html_tags(markup)} <= TELEGRAM_TAGS
    assert html_tags(message.text) == html_tags(benign.text), "markup got through"
    assert literal(text) in " ".join(html.unescape(message.text).split())


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: t[:20])
def test_email(default: Renderer, text: str) -> None:
    benign = render(default, "email", hostile_event("benign title"))
    message = render(default, "email", hostile_event(text))
    check_limits(message, "email")
    assert message.html is not None and benign.html is not None
    assert_well_formed(message.html)
    assert html_tags(message.html) == html_tags(benign.html), "markup got through"
    assert literal(text) in " ".join(html.unescape(message.html).split())
    assert literal(text) in " ".join(message.text.split())

    email = EmailMessage()
    assert message.subject is not None
    email["Subject"] = message.subject
    email["To"] = "leads@example.com"
    email.set_content(message.text)
    email.add_alternative(message.html, subtype="html")
    parsed = message_from_bytes(email.as_bytes(), policy=policy.default)
    assert sorted(parsed.keys()) == ["Content-Type", "MIME-Version", "Subject", "To"]
    assert parsed["Subject"] == message.subject


@pytest.mark.parametrize("kind", ["plain", "webhook"])
@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: t[:20])
def test_plain(default: Renderer, kind: str, text: str) -> None:
    message = render(default, kind, hostile_event(text))
    check_limits(message, kind)
    assert literal(text) in message.text
    assert not re.search(r"^Bcc:", message.text, re.MULTILINE), "event text started a new line"
    assert "\r" not in message.text


def test_template_syntax_in_event_text_is_not_evaluated(default: Renderer) -> None:
    for kind in KINDS:
        message = render(default, kind, hostile_event("{{ 'zq' ~ 'xj' }}{% raw %}"))
        seen = message.text + (message.html or "") + str(message.blocks or "")
        assert "zqxj" not in seen
        assert "{{ " in seen and "zq" in seen and "{% raw %}" in seen


def test_only_http_urls_become_links(default: Renderer) -> None:
    payload = sample("run_finished_completed_youtube")
    payload["triggered_by"]["video_url"] = "javascript:alert(1)"
    payload["outputs"][0]["video_url"] = "data:text/html,<script>alert(1)</script>"
    payload["outputs"][0]["thumbnail_url"] = "file:///etc/passwd"
    payload["inputs"][0]["thumbnail_url"] = "javascript:alert(2)"
    for kind in KINDS:
        message = render(default, kind, payload)
        seen = message.text + (message.html or "") + str(message.blocks or "")
        assert "javascript:" not in seen and "data:" not in seen and "file:" not in seen
        assert message.image_url is None
    message = render(default, "slack", payload)
    assert "Never Gonna Give You Up" in "\n".join(mrkdwn_texts(message))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=400))
def test_any_text_renders_within_limits(default: Renderer, text: str) -> None:
    for kind in KINDS:
        message = render(default, kind, hostile_event(text))
        check_limits(message, kind)
        if kind == "slack":
            assert not re.search(r"<[!@#]", "\n".join(mrkdwn_texts(message)))
        if kind == "telegram":
            assert_well_formed(message.text)
        if kind == "email":
            assert message.html is not None
            assert_well_formed(message.html)


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: t[:20])
def test_user_text_template(text: str) -> None:
    r = renderer({"t": {"text": "Title: {{ trigger.video_title }}\nWhy: {{ status_message }}"}})
    payload = hostile_event(text)
    slack = render(r, "slack", payload, "t")
    mrkdwn = "\n".join(mrkdwn_texts(slack))
    assert not re.search(r"<[!@#]", mrkdwn)
    assert all("|" not in link for link in re.findall(r"<[^>]*>", mrkdwn)), "a labelled link"
    telegram = render(r, "telegram", payload, "t")
    assert html_tags(telegram.text) == []
    assert_well_formed(telegram.text)
    email = render(r, "email", payload, "t")
    assert email.html is not None
    assert {tag for tag, _ in html_tags(email.html)} <= {"br"}
    for kind in KINDS:
        check_limits(render(r, kind, payload, "t"), kind)
