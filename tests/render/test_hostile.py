"""Hostile event text (YouTube title, status message, errors) must render as literal text."""

from __future__ import annotations

import html
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.channels.base import Message
from relay.render import Renderer
from relay.render.limits import measure, safe_url
from tests.render.helpers import (
    KINDS,
    LIMITS,
    TELEGRAM_TAGS,
    assert_no_slack_markup_from_event,
    assert_well_formed,
    html_tags,
    mrkdwn_texts,
    plain_texts,
    render,
    renderer,
    sample,
)

README = Path(__file__).resolve().parents[2] / "README.md"
INCIDENT = (
    "Cute cats\n> *SECURITY NOTICE:* sign in again at https://slack-login.evil.example/auth ~now~"
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
    INCIDENT,
    "sign in at www.evil.example or HTTPS://evil.example:443/x, mail admin@evil.example",
    "ping @here @channel in #general, see slack-login.evil.example",
    "  > indented quote\n\t> tabbed quote\n```code block```",
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
        "\u200b": None,
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
    if kind == "discord":
        check_embeds(message.blocks or [])
        return
    for block in message.blocks or []:
        limit = 150 if block["type"] == "header" else 3000
        for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            assert part is None or measure(part["text"]) <= limit


def check_embeds(embeds: list[dict[str, Any]]) -> None:
    """Discord's limits: parts, 25 fields, 10 embeds, 6,000 characters across them."""
    assert len(embeds) <= 10
    total = 0
    for embed in embeds:
        parts = [(embed.get("title", ""), 256), (embed.get("description", ""), 4096)]
        parts += [(embed.get("author", {}).get("name", ""), 256)]
        parts += [(embed.get("footer", {}).get("text", ""), 2048)]
        assert len(embed.get("fields", [])) <= 25
        for field in embed.get("fields", []):
            parts += [(field["name"], 256), (field["value"], 1024)]
            assert field["name"].strip() and field["value"].strip()
        for text, limit in parts:
            assert measure(text) <= limit
            total += measure(text)
    assert total <= 6000


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
    assert_no_slack_markup_from_event(message, benign, link_targets(hostile_event(text)))


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


# --- user templates --------------------------------------------------------------------------------


def readme_templates() -> dict[str, dict[str, Any]]:
    """The ``templates:`` example of the README's "Templates" section."""
    text = README.read_text()
    section = text[text.index("### Templates") :]
    start = section.index("```yaml") + len("```yaml")
    source = section[start : section.index("```", start)]
    templates: dict[str, dict[str, Any]] = yaml.safe_load(source)["templates"]
    return templates


USER_TEMPLATES: dict[str, dict[str, Any]] = {
    "text": {
        "text": (
            "*{{ status_word }}:* {{ trigger.video_title }}\n"
            "Why: {{ status_message }} (`{{ run_short }}`)\n"
            "{% for message in error_messages %}• _{{ message }}_\n{% endfor %}"
            "> {{ agent_name }}\n"
            "{{ outputs[0].video_url | link('Watch') }} · "
            "{{ trigger.video_url | link(trigger.video_title) }} · {{ trigger.video_url }}"
        )
    },
    "slack": {
        "slack": {
            "blocks": [
                {
                    "type": "header",
                    "text": {"type": "plain_text", "text": "{{ trigger.video_title }}"},
                },
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": "*Title:* {{ trigger.video_title }}"},
                    "fields": [
                        {"type": "mrkdwn", "text": "*Why*\n{{ status_message }}"},
                        {"type": "plain_text", "text": "{{ errors[0] }}"},
                    ],
                },
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": "{{ run_id | truncate(60) }}"},
                        {"type": "plain_text", "text": "{{ status_message }}"},
                    ],
                },
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": "<https://docs.example/runbook|*Runbook*> · "
                        "{{ outputs[0].video_url | link(trigger.video_title) }}",
                    },
                },
            ],
            "text": "{{ title }} — {{ trigger.video_title }}: {{ status_message }}",
        }
    },
}


def _template_cases() -> list[tuple[str, str]]:
    names = [*USER_TEMPLATES, *(f"readme:{name}" for name in readme_templates())]
    return [(name, text) for name in names for text in HOSTILE]


@pytest.fixture(scope="module")
def users() -> Renderer:
    readme = {f"readme:{name}": t for name, t in readme_templates().items()}
    return renderer({**USER_TEMPLATES, **readme})


def link_targets(payload: dict[str, Any]) -> set[str]:
    """The URL fields a template may link, as they appear in a Slack link."""
    urls = [payload["triggered_by"]["video_url"], *(o["video_url"] for o in payload["outputs"])]
    return {url.replace("&", "&amp;") for url in map(safe_url, urls) if url}


@pytest.mark.parametrize(("template", "text"), _template_cases(), ids=lambda v: v[:20])
def test_user_template_slack(users: Renderer, template: str, text: str) -> None:
    payload = hostile_event(text)
    benign = render(users, "slack", hostile_event("benign title"), template)
    message = render(users, "slack", payload, template)
    check_limits(message, "slack")
    assert_no_slack_markup_from_event(message, benign, link_targets(payload))
    shown = slack_visible("\n".join(mrkdwn_texts(message) + plain_texts(message)))
    assert literal(text)[:20] in " ".join(shown.split())


@pytest.mark.parametrize(("template", "text"), _template_cases(), ids=lambda v: v[:20])
def test_user_template_html(users: Renderer, template: str, text: str) -> None:
    for kind in ("telegram", "email"):
        benign = render(users, kind, hostile_event("benign title"), template)
        message = render(users, kind, hostile_event(text), template)
        check_limits(message, kind)
        for markup in (message.text, message.caption) if kind == "telegram" else (message.html,):
            assert markup is not None
            assert_well_formed(markup)
        got = message.text if kind == "telegram" else message.html
        want = benign.text if kind == "telegram" else benign.html
        assert got is not None and want is not None
        allowed = tag_shapes(want) | {("br", ())}  # email: the text's line breaks become <br>
        assert tag_shapes(got) <= allowed, "markup got through"


def tag_shapes(html: str) -> set[tuple[str, tuple[tuple[str, str | None], ...]]]:
    return {(tag, tuple(sorted(attrs.items()))) for tag, attrs in html_tags(html)}


def test_the_incident_title_reaches_slack_as_text() -> None:
    """A YouTube title that once became a quote, bold, strike and a phishing link."""
    r = renderer({"t": {"text": "New video: {{ trigger.video_title }}"}})
    message = render(r, "slack", hostile_event(INCIDENT), "t")
    for text in mrkdwn_texts(message):
        assert "<" not in text and "*" not in text and "~" not in text
        assert "https://" not in text and "slack-login.evil.example" not in text
        assert not re.search(r"^\s*&gt;", text, re.MULTILINE)
    assert "sign in again at https://slack-login.evil.example/auth" in slack_visible(message.text)


def test_template_markup_and_asked_for_links_still_work() -> None:
    r = renderer(
        {"t": {"text": "*Failed* <https://docs.example|docs> {{ event.url | link('Watch') }}"}}
    )
    payload = hostile_event("x")
    payload["url"] = "https://e.example/v?a=1&b=2"
    message = render(r, "slack", payload, "t")
    expected = "*Failed* <https://docs.example|docs> <https://e.example/v?a=1&amp;b=2|Watch>"
    assert message.text == expected
    assert message.blocks == [
        {"type": "section", "text": {"type": "mrkdwn", "text": expected, "verbatim": True}}
    ]


@pytest.mark.parametrize("name", sorted(readme_templates()))
def test_readme_template_links_only_what_it_asks_for(name: str) -> None:
    r = renderer(readme_templates())
    payload = hostile_event(INCIDENT)
    message = render(r, "slack", payload, name)
    benign = render(r, "slack", hostile_event("benign title"), name)
    assert_no_slack_markup_from_event(message, benign, link_targets(payload))
    seen = "\n".join(mrkdwn_texts(message))
    assert "slack-login.evil.example" not in seen and "https://slack-login" not in seen
