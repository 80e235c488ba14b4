"""Digests rendered for every kind: within the destination's limits, hostile titles inert,
and as many runs as fit ("… and N more")."""

from __future__ import annotations

import html
import re

import pytest

from relay.channels.base import Message
from relay.digest.entries import Digest, Entry
from relay.render import Renderer
from relay.render.errors import RenderError
from tests.render.helpers import LIMITS, SHORTS, renderer
from tests.render.test_hostile import (
    HOSTILE,
    TELEGRAM_TAGS,
    assert_well_formed,
    check_limits,
    html_tags,
    literal,
)

DIGEST_KINDS = ("plain", "slack", "telegram", "email", "webhook")
T0 = 1_800_000_000.0


def entry(n: int, title: str = "benign title", status: str = "completed") -> Entry:
    return Entry(
        flag="RUN_FINISHED",
        status=status,
        run_id=f"run-{n:04d}-0000-0000",
        agent_id=SHORTS,
        trigger="youtube",
        video_title=title,
        video_url="https://youtube.com/watch?v=x",
        outputs=["https://cdn.example/out.mp4", "javascript:alert(1)"],
        outputs_count=3,
        received_at=T0 + n * 60,
    )


def digest(*entries: Entry, kind: str = "digest") -> Digest:
    return Digest(
        kind="quiet" if kind == "quiet" else "digest",
        route="daily-youtube",
        channel="team",
        start=T0,
        end=T0 + 86_400,
        timezone="Europe/Berlin",
        entries=list(entries),
    )


def render(
    r: Renderer, kind: str, d: Digest, template: str | None = None, *, max_runs: int = 50
) -> Message:
    return r.render_digest(
        kind, template, d, event_id="evt-1", channel="team", limits=LIMITS[kind], max_runs=max_runs
    )


@pytest.fixture(scope="module")
def default() -> Renderer:
    return renderer()


def test_counts_then_runs_newest_first(default: Renderer) -> None:
    runs = [entry(1, "First"), entry(2, "Second", "failed"), entry(3, "Third")]
    text = render(default, "plain", digest(*runs)).text
    assert text.startswith("📋 daily-youtube: 3 runs\n")
    assert "\nFri 15 Jan 09:00 – Sat 16 Jan 09:00 CET\n" in text
    assert "✅ Finished: 2   ❌ Failed: 1" in text
    assert text.index("Third") < text.index("Second") < text.index("First")
    assert "Shorts cutter" in text
    assert "https://cdn.example/out.mp4" in text
    assert "javascript:" not in text  # only http(s) links


def test_one_run_is_one_line_its_newest_event(default: Renderer) -> None:
    started = entry(1, "The video", "running").model_copy(update={"flag": "RUN_STARTED"})
    ended = entry(2, "The video", "failed").model_copy(update={"run_id": started.run_id})
    text = render(default, "plain", digest(started, ended, kind="quiet")).text
    assert text.startswith("🌙 Quiet hours: 1 run held")
    assert "❌ Failed: 1" in text and "Started" not in text


@pytest.mark.parametrize("kind", DIGEST_KINDS)
def test_as_many_runs_as_fit_and_the_rest_counted(default: Renderer, kind: str) -> None:
    runs = [entry(n, f"Title-{n}-" + "words " * 10) for n in range(2000)]
    message = render(default, kind, digest(*runs), max_runs=5000)
    check_limits(message, kind)
    listed = len(re.findall(r"Title-\d+-", message.text))
    more = re.search(r"… and ([\d,]+) more", message.text)
    assert more is not None, message.text[-300:]
    assert 0 < listed < 2000
    assert listed + int(more.group(1).replace(",", "")) == 2000


def test_max_runs_bounds_the_list(default: Renderer) -> None:
    runs = [entry(n) for n in range(60)]
    text = render(default, "plain", digest(*runs)).text
    assert text.count("benign title") == 50
    assert "… and 10 more" in text


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: t[:20])
def test_hostile_titles_stay_text(default: Renderer, text: str) -> None:
    hostile = digest(entry(1, text), entry(2, "benign title"))
    benign = digest(entry(1, "benign title"), entry(2, "benign title"))

    plain = render(default, "plain", hostile)
    check_limits(plain, "plain")
    assert literal(text)[:30] in plain.text.replace("\u202e", "").replace("\u2066", "")

    slack = render(default, "slack", hostile)
    check_limits(slack, "slack")
    assert "<!" not in slack.text and "<@" not in slack.text and "<#" not in slack.text
    links = re.findall(r"<(https?://[^|>]*)", slack.text)
    assert links == re.findall(r"<(https?://[^|>]*)", render(default, "slack", benign).text)

    telegram = render(default, "telegram", hostile)
    check_limits(telegram, "telegram")
    assert_well_formed(telegram.text)
    assert {tag for tag, _ in html_tags(telegram.text)} <= TELEGRAM_TAGS
    assert html_tags(telegram.text) == html_tags(render(default, "telegram", benign).text)
    assert literal(text)[:30] in " ".join(html.unescape(telegram.text).split())

    email = render(default, "email", hostile)
    assert email.html is not None
    assert_well_formed(email.html)
    assert html_tags(email.html) == html_tags(render(default, "email", benign).html or "")


def test_an_empty_window_says_so(default: Renderer) -> None:
    message = render(default, "telegram", digest())
    assert "No runs in this window." in message.text
    assert message.subject == "📋 daily-youtube: 0 runs"


def test_a_template_of_the_users_gets_the_runs() -> None:
    custom = renderer(
        {
            "brief": {
                "text": "{{ total_runs }} videos: {% for run in runs %}{{ run.video_title }}; "
                "{% endfor %}{% if more %}+{{ more }}{% endif %}"
            }
        }
    )
    message = render(custom, "telegram", digest(entry(1, "<b>One</b>"), entry(2, "Two")), "brief")
    assert message.text == "2 videos: Two; &lt;b&gt;One&lt;/b&gt;;"


def test_a_template_error_is_a_render_error() -> None:
    custom = renderer({"bad": {"text": "{{ title.nope() }}"}})
    with pytest.raises(RenderError, match="template 'bad'"):
        render(custom, "plain", digest(entry(1)), "bad")
