from __future__ import annotations

import json
from email.message import EmailMessage
from typing import Any

import pytest

from relay.channels.base import Limits
from relay.render import Renderer, RenderError, TemplateConfigError, TemplateSettings
from tests.render.helpers import (
    AGENTS,
    KINDS,
    LIMITS,
    TELEGRAM_TAGS,
    assert_well_formed,
    everything,
    html_tags,
    render,
    renderer,
    sample,
    sample_names,
)

YOUTUBE = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
EXPECTED: dict[str, list[str]] = {
    "run_finished_failed": [
        "Failed",
        "❌",
        "Clip cutter",
        "c2d9e8f7",
        "6/8",
        "2 failed",
        "Render node ran out of credits",
        "node 3f1a: insufficient credits",
        "Out of credits",
    ],
    "run_finished_completed_youtube": [
        "Finished",
        "✅",
        "Shorts cutter",
        "7f8d9c2b",
        "10/10",
        "Never Gonna Give You Up",
        YOUTUBE,
        "https://storage.example.com/renders/7ba7b810/output.mp4",
    ],
    "run_finished_partial_schedule": [
        "Partially complete",
        "⚠️",
        "Clip cutter",
        "8/9",
        "1 failed",
        "1 of 3 renders failed",
        "Schedule",
        "https://storage.example.com/renders/aa11/vertical.mp4",
        "https://storage.example.com/renders/aa12/square.mp4",
    ],
    "run_progress": [
        "Running",
        "⏳",
        "Shorts cutter",
        "4/7",
        "57%",
        "▰▰▰▰▱▱▱",
        "https://storage.example.com/renders/7ba7b810/clip.mp4",
    ],
    "run_started_youtube": [
        "Started",
        "🚀",
        "Shorts cutter",
        "1/6",
        "Never Gonna Give You Up",
        YOUTUBE,
    ],
    "run_cancelled_manual": ["Cancelled", "🛑", "Shorts cutter", "Cancelled by user", "Manual"],
    "test": ["Test", "🧪", "Shorts cutter"],
}
IMAGES = {
    "run_finished_completed_youtube": "https://storage.example.com/renders/7ba7b810/thumb.jpg",
    "run_finished_partial_schedule": "https://storage.example.com/renders/aa11/thumb.jpg",
    "run_progress": "https://storage.example.com/renders/7ba7b810/thumb.jpg",
    "run_started_youtube": "https://storage.example.com/runs/7f8d9c2b/thumb.jpg",
}


@pytest.fixture(scope="module")
def default() -> Renderer:
    return renderer()


def test_every_sample_has_expectations() -> None:
    assert sorted(EXPECTED) == sample_names()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_samples_render_with_expected_content(default: Renderer, name: str, kind: str) -> None:
    payload = sample(name)
    message = render(default, kind, payload)
    seen = everything(message, kind)
    for expected in EXPECTED[name]:
        assert expected in seen, f"{expected!r} missing from {kind} message for {name}"
    assert message.run_id == payload["run_id"]
    assert (message.event_id, message.route) == ("evt-1", "failed-runs")
    assert (message.flag, message.status, message.agent_id) == (
        payload["flag"],
        payload["status"],
        payload["agent_id"],
    )
    assert message.image_url == IMAGES.get(name)
    assert message.subject and "\n" not in message.subject
    assert message.body is None


def test_slack_default_layout(default: Renderer) -> None:
    message = render(default, "slack", sample("run_finished_completed_youtube"))
    assert message.blocks is not None
    header, facts, *rest = message.blocks
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "✅ Finished · Shorts cutter", "emoji": True},
    }
    labels = [field["text"].split("\n")[0] for field in facts["fields"]]
    assert labels == ["*Agent*", "*Run*", "*Trigger*", "*Progress*", "*Elapsed*"]
    assert facts["accessory"]["image_url"] == IMAGES["run_finished_completed_youtube"]
    texts = [block["text"]["text"] for block in rest if block["type"] == "section"]
    assert f"▶️ *YouTube:* <{YOUTUBE}|Never Gonna Give You Up>" in texts
    assert message.text == "✅ Finished: Shorts cutter run 7f8d9c2b"


def test_slack_failure_section(default: Renderer) -> None:
    message = render(default, "slack", sample("run_finished_failed"))
    assert message.blocks is not None
    reason = message.blocks[2]["text"]["text"]
    assert reason.startswith("*Why it failed:* Render node ran out of credits")
    assert "• `node 3f1a: insufficient credits`" in reason
    assert "*Out of credits:*" in reason
    assert message.text.endswith("— Render node ran out of credits")


def test_telegram_default_is_small_valid_html(default: Renderer) -> None:
    for name in sample_names():
        message = render(default, "telegram", sample(name))
        assert_well_formed(message.text)
        assert {tag for tag, _ in html_tags(message.text)} <= TELEGRAM_TAGS
        assert message.caption is not None
        assert message.caption == message.text  # short enough to be a caption as it is
    message = render(default, "telegram", sample("run_finished_completed_youtube"))
    assert f'<a href="{YOUTUBE}">Never Gonna Give You Up</a>' in message.text
    assert message.text.startswith("✅ <b>Finished</b> · <b>Shorts cutter</b>")


def test_email_default(default: Renderer) -> None:
    message = render(default, "email", sample("run_finished_failed"))
    assert message.subject == "❌ Failed: Clip cutter run c2d9e8f7"
    assert message.html is not None
    assert_well_formed(message.html)
    message = render(default, "email", sample("run_finished_completed_youtube"))
    assert message.subject == "✅ Finished: Shorts cutter run 7f8d9c2b — Never Gonna Give You Up"
    assert message.html is not None
    tags = html_tags(message.html)
    images = [attrs for tag, attrs in tags if tag == "img"]
    assert images == [
        {
            "src": IMAGES["run_finished_completed_youtube"],
            "alt": "Thumbnail",
            "width": "320",
            "style": "max-width:100%;border-radius:4px;",
        }
    ]
    assert ("a", {"href": YOUTUBE}) in tags


def test_caption_is_cut_to_the_caption_limit(default: Renderer) -> None:
    payload = sample("run_finished_failed")
    payload["status_message"] = "<b>" + "word " * 400
    message = render(default, "telegram", payload, limits=Limits(text=4096, caption=200))
    assert message.caption is not None
    assert len(message.caption) <= 200
    assert message.caption.startswith("❌ <b>Failed</b>")
    assert_well_formed(message.caption)
    assert len(message.text) > 200


@pytest.mark.parametrize("kind", ["plain", "slack", "telegram", "email"])
def test_elapsed_only_when_known_and_meaningful(default: Renderer, kind: str) -> None:
    def shown(name: str, started: float | None) -> bool:
        return "1m 05s" in everything(
            render(default, kind, sample(name), run_started_at=started), kind
        )

    assert shown("run_finished_failed", 1_000.0)
    assert not shown("run_finished_failed", None)
    assert not shown("run_started_youtube", 1_000.0)


def test_unknown_kind_and_template(default: Renderer) -> None:
    with pytest.raises(ValueError, match="unknown render kind"):
        render(default, "fax", sample("test"))
    with pytest.raises(RenderError, match="unknown template 'nope'"):
        render(default, "plain", sample("test"), "nope")


def test_minimal_and_odd_events_render(default: Renderer) -> None:
    minimal = {"flag": "RUN_PAUSED", "agent_id": "a", "run_id": "r", "status": "paused"}
    odd = {
        **minimal,
        "triggered_by": {"type": "webhook", "video_url": 3},
        "outputs": [{"video_url": "ftp://x"}, "junk"],
        "errors": [{"deep": {"er": ["x"]}}],
        "node_status_counts": {"completed": "many"},
    }
    for payload in (minimal, odd):
        for kind in KINDS:
            message = render(default, kind, payload)
            assert "Paused" in everything(message, kind)


# --- user templates --------------------------------------------------------------------------------

TEXT_ONLY = {"youtube": {"text": "New video: {{ trigger.video_title }} {{ outputs[0].video_url }}"}}


@pytest.mark.parametrize("kind", KINDS)
def test_text_only_template_works_for_every_kind(kind: str) -> None:
    r = renderer(TEXT_ONLY)
    payload = sample("run_finished_completed_youtube")
    payload["triggered_by"]["video_title"] = "Tom & Jerry <3"
    message = render(r, kind, payload, "youtube")
    url = "https://storage.example.com/renders/7ba7b810/output.mp4"
    unlinked = "https:\u200b//storage.\u200bexample.\u200bcom/renders/7ba7b810/output.\u200bmp4"
    expected = {
        "plain": f"New video: Tom & Jerry <3 {url}",
        "webhook": f"New video: Tom & Jerry <3 {url}",
        "email": f"New video: Tom & Jerry <3 {url}",
        "slack": f"New video: Tom &amp; Jerry &lt;3 {unlinked}",
        "telegram": f"New video: Tom &amp; Jerry &lt;3 {url}",
        "discord": f"New video: Tom & Jerry \\<3 {url}",
    }[kind]
    assert message.text == expected
    if kind == "slack":  # a value is never linked unless the template asks: `url | link(text)`
        assert message.blocks == [
            {"type": "section", "text": {"type": "mrkdwn", "text": expected, "verbatim": True}}
        ]
    if kind == "email":
        assert message.html == f"New video: Tom &amp; Jerry &lt;3 {url}"
        assert message.subject == "✅ Finished: Shorts cutter run 7f8d9c2b — Tom & Jerry <3"


def test_email_html_from_text_keeps_line_breaks() -> None:
    r = renderer({"t": {"text": "line <1>\n{{ status }}"}})
    message = render(r, "email", sample("run_finished_failed"), "t")
    assert message.text == "line <1>\nfailed"
    assert message.html == "line &lt;1&gt;<br>\nfailed"


ALL_PARTS: dict[str, Any] = {
    "full": {
        "text": "TEXT {{ status }}",
        "slack": {
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "{{ title }} & co"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "*Run* {{ event.v }}"}},
                {"type": "image", "image_url": "{{ image_url }}", "alt_text": "{{ agent_name }}"},
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": "{% if errors %}x{% endif %}"},
                },
            ],
            "text": "FALLBACK {{ agent_name }}",
        },
        "telegram": "<b>TG</b> {{ agent_name }}",
        "email": {
            "subject": "SUBJ {{ status }}\r\nBcc: x@example.com",
            "text": "ET",
            "html": "<p>EH</p>",
        },
        "webhook": '{"status": {{ status | tojson }}, "text": {{ text | tojson }}}',
    }
}


def test_each_kind_uses_its_own_part() -> None:
    r = renderer(ALL_PARTS)
    payload = sample("run_finished_completed_youtube")
    payload["outputs"][0]["thumbnail_url"] = "https://e.com/t.jpg?a=1&b=2"
    payload["v"] = "<!here>"
    plain = render(r, "plain", payload, "full")
    assert plain.text == "TEXT completed"
    assert plain.subject == "SUBJ completed Bcc: x@example.com"
    slack = render(r, "slack", payload, "full")
    assert slack.text == "FALLBACK Shorts cutter"
    assert slack.blocks == [  # plain_text and URL leaves are not escaped; the empty section is gone
        {
            "type": "header",
            "text": {"type": "plain_text", "text": "✅ Finished: Shorts cutter run 7f8d9c2b & co"},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Run* &lt;!here&gt;"}},
        {"type": "image", "image_url": "https://e.com/t.jpg?a=1&b=2", "alt_text": "Shorts cutter"},
    ]
    telegram = render(r, "telegram", payload, "full")
    assert telegram.text == "<b>TG</b> Shorts cutter"
    email = render(r, "email", payload, "full")
    assert (email.subject, email.text, email.html) == (
        "SUBJ completed Bcc: x@example.com",
        "ET",
        "<p>EH</p>",
    )
    webhook = render(r, "webhook", payload, "full")
    assert webhook.text == "TEXT completed"
    assert webhook.body is not None
    assert json.loads(webhook.body) == {"status": "completed", "text": "TEXT completed"}


def test_partial_templates_fall_back_to_defaults() -> None:
    r = renderer({"tg": {"telegram": "only {{ status }}"}, "subj": {"email": {"subject": "S!"}}})
    payload = sample("run_finished_failed")
    assert render(r, "telegram", payload, "tg").text == "only failed"
    default = render(renderer(), "plain", payload)
    assert render(r, "plain", payload, "tg").text == default.text
    assert render(r, "slack", payload, "tg").blocks == render(renderer(), "slack", payload).blocks
    email = render(r, "email", payload, "subj")
    assert email.subject == "S!"
    assert email.text == render(renderer(), "email", payload).text
    assert render(r, "plain", payload, "subj").subject == "S!"


def test_slack_dict_with_only_text() -> None:
    r = renderer({"s": {"slack": {"text": "*{{ status }}* <https://docs.example|docs>"}}})
    message = render(r, "slack", sample("run_finished_failed"), "s")
    assert message.text == "*failed* <https://docs.example|docs>"
    assert message.blocks is not None
    assert message.blocks[0]["text"]["text"] == message.text


def test_route_template_versus_default() -> None:
    r = renderer({"short": {"text": "short {{ status_word }}"}})
    payload = sample("run_finished_failed")
    assert render(r, "plain", payload, "short").text == "short Failed"
    assert render(r, "plain", payload, None).text.startswith("❌ Failed: Clip cutter run c2d9e8f7")


def test_strict_undefined_is_a_render_error() -> None:
    r = renderer({"bad": {"text": "ok\n{{ trigger.video_titel }}"}})
    with pytest.raises(RenderError) as caught:
        render(r, "plain", sample("run_finished_failed"), "bad")
    message = str(caught.value)
    assert "template 'bad' line 2 (plain)" in message
    assert "video_titel" in message


def test_syntax_errors_fail_at_construction() -> None:
    cases = [
        ({"text": "{% if x %}never closed"}, "text", 1),
        ({"email": {"html": "<p>\n\n{{ x | }}</p>"}}, "email.html", 3),
        (
            {
                "slack": [
                    {"type": "divider"},
                    {"type": "section", "text": {"type": "mrkdwn", "text": "{{"}},
                ]
            },
            "slack[1].text.text",
            1,
        ),
        (
            {"slack": {"blocks": [{"type": "image", "image_url": "{{ x ]}"}]}},
            "slack.blocks[0].image_url",
            1,
        ),
        ({"webhook": '{"a": {{ a | tojson }'}, "webhook", 1),
    ]
    for template, key, line in cases:
        settings = {"t": TemplateSettings.model_validate(template)}
        with pytest.raises(TemplateConfigError) as caught:
            Renderer(settings, AGENTS)
        assert (caught.value.name, caught.value.key, caught.value.lineno) == ("t", key, line)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ event.__class__.__mro__ }}",
        "{{ environ['HOME'] }}",
        "{{ range.__self__ }}",
        "{{ event.clear() }}",
        "{% include 'relay.yaml' %}",
        "{{ range(10**9) | list }}",
    ],
)
def test_sandbox_violations_are_render_errors(source: str) -> None:
    r = renderer({"evil": {"text": source}})
    for kind in KINDS:
        with pytest.raises(RenderError):
            render(r, kind, sample("run_finished_failed"), "evil")


# --- webhook bodies --------------------------------------------------------------------------------


def test_webhook_body_from_the_channel() -> None:
    r = renderer()
    payload = sample("run_finished_completed_youtube")
    payload["triggered_by"]["video_title"] = 'He said "hi"\n}'
    body = '{"title": {{ trigger.video_title | tojson }}, "subject": {{ subject | tojson }}, "n": {{ progress.completed }}}'
    message = render(r, "webhook", payload, channel_templates={"body": body})
    assert message.body is not None
    assert json.loads(message.body) == {
        "title": 'He said "hi"\n}',
        "subject": message.subject,
        "n": 10,
    }


def test_template_webhook_part_wins_over_channel_body() -> None:
    r = renderer({"t": {"webhook": '{"from": "template"}'}})
    message = render(
        r, "webhook", sample("test"), "t", channel_templates={"body": '{"from": "channel"}'}
    )
    assert message.body == '{"from": "template"}'


def test_body_that_is_not_json_is_a_render_error() -> None:
    payload = sample("run_finished_completed_youtube")
    payload["triggered_by"]["video_title"] = 'quote " breaks'
    with pytest.raises(RenderError, match="not valid JSON"):
        render(
            renderer(),
            "webhook",
            payload,
            channel_templates={"body": '{"t": "{{ trigger.video_title }}"}'},
        )
    with pytest.raises(RenderError, match="line 1"):
        render(renderer(), "webhook", payload, channel_templates={"body": '{"t": {{ x }'})


# --- limits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_huge_event_text_stays_within_limits(default: Renderer, kind: str) -> None:
    payload = sample("run_finished_completed_youtube")
    payload["status"] = "failed"
    payload["triggered_by"]["video_title"] = "T" * 10_000
    payload["status_message"] = "M" * 10_000
    payload["errors"] = ["E" * 10_000] * 50
    payload["outputs"] = payload["outputs"] * 100
    small = Limits(text=500, caption=100, subject=60, header=40, section=200, blocks=5)
    message = render(default, kind, payload, limits=small)
    assert len(message.text) <= 500
    assert message.subject is not None and len(message.subject) <= 60
    if kind == "slack":
        assert message.blocks is not None and len(message.blocks) <= 5
        assert len(message.blocks[0]["text"]["text"]) <= 40
        for block in message.blocks[1:]:
            for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
                assert part is None or len(part["text"]) <= 200
    if kind == "telegram":
        assert message.caption is not None and len(message.caption) <= 100
        assert_well_formed(message.text)
        assert_well_formed(message.caption)
    if kind == "email":
        assert message.html is not None and len(message.html) <= 500
        assert_well_formed(message.html)


def test_default_limits_when_the_channel_sets_none(default: Renderer) -> None:
    payload = sample("run_finished_completed_youtube")
    payload["triggered_by"]["video_title"] = "T" * 10_000
    message = render(default, "slack", payload, limits=Limits(text=40_000))
    assert message.blocks is not None
    assert all(len(b["text"]["text"]) <= 3000 for b in message.blocks if "text" in b)
    message = render(default, "telegram", payload, limits=Limits(text=4096))
    assert message.caption is not None and len(message.caption) <= 1024


def test_email_subject_is_a_valid_header(default: Renderer) -> None:
    payload = sample("run_finished_completed_youtube")
    payload["triggered_by"]["video_title"] = "Hello\r\nBcc: victim@example.com\nX-Evil: 1"
    message = render(default, "email", payload, limits=LIMITS["email"])
    email = EmailMessage()
    assert message.subject is not None
    email["Subject"] = message.subject  # raises on CR/LF
    assert "Bcc" not in email
    assert "\r" not in message.subject and "\n" not in message.subject


def test_renderer_ignores_agents_mapping_changes_after_construction() -> None:
    agents = dict(AGENTS)
    r = Renderer({}, agents)
    agents.clear()
    assert "Clip cutter" in render(r, "plain", sample("run_finished_failed")).text
