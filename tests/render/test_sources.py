"""Run links, events the relay built (reconciled, RUN_STALE) and agents' names in Mosaic, in every
default template."""

from __future__ import annotations

from typing import Any

import pytest

from relay.channels.base import Message
from relay.events import Event
from relay.render import Renderer
from relay.render.context import RECOVERED_NOTE, status_style
from tests.fakes.slack import check_blocks
from tests.render.helpers import AGENTS, CUTTER, KINDS, LIMITS, SHORTS, context_of, render, sample

RUN_URL = "https://edit.mosaic.so/agents/{agent_id}/runs/{run_id}"
STALE_NOTE = "No news from this run for 2h 00m — still running at 4/7 nodes"


def linked(run_url: str | None = RUN_URL, **names: Any) -> Renderer:
    return Renderer({}, AGENTS, run_url=run_url, **names)


def stale() -> dict[str, Any]:
    return {
        **sample("run_progress"),
        "flag": "RUN_STALE",
        "_relay": {"source": "watch", "silent_for": 7200},
    }


def reconciled() -> dict[str, Any]:
    return {**sample("run_finished_failed"), "_relay": {"source": "reconciled"}}


def everything(message: Message) -> str:
    """All a kind wrote: text, HTML, caption and every string in the blocks."""
    parts = [message.text, message.html or "", message.caption or "", message.body or ""]
    return "\n".join(parts) + repr(message.blocks or [])


def run_link(payload: dict[str, Any]) -> str:
    return f"https://edit.mosaic.so/agents/{payload['agent_id']}/runs/{payload['run_id']}"


@pytest.mark.parametrize("kind", ["plain", "telegram", "email"])
def test_every_kind_links_the_run(kind: str) -> None:
    payload = sample("run_finished_failed")
    message = render(linked(), kind, payload, limits=LIMITS[kind])
    url = run_link(payload)
    if kind == "plain":
        assert f"Open in Mosaic: {url}" in message.text
    elif kind == "telegram":
        assert f'🔗 <a href="{url}">Open in Mosaic</a>' in message.text
        assert url in (message.caption or "")
    else:
        assert f"Open in Mosaic: {url}" in message.text
        assert f'<a href="{url}">Open in Mosaic</a>' in (message.html or "")


def test_slack_links_the_run_with_a_button_and_in_the_fallback_text() -> None:
    payload = sample("run_finished_failed")
    message = render(linked(), "slack", payload, limits=LIMITS["slack"])
    url = run_link(payload)
    actions = [block for block in message.blocks or [] if block["type"] == "actions"]
    assert actions == [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in Mosaic", "emoji": True},
                    "url": url,
                }
            ],
        }
    ]
    assert message.text.endswith(f" · <{url}|Open in Mosaic>")


@pytest.mark.parametrize("kind", KINDS)
def test_without_run_url_nothing_links_the_run(kind: str) -> None:
    message = render(linked(None), kind, sample("run_finished_failed"), limits=LIMITS[kind])
    assert "Open in Mosaic" not in everything(message)
    assert "edit.mosaic.so" not in everything(message)


def test_a_test_event_has_no_run_link() -> None:
    ctx = context_of(Event.model_validate(sample("test")), run_url=RUN_URL)
    assert ctx["run_url"] is None


def test_the_run_link_quotes_each_id_whole() -> None:
    payload = {**sample("run_finished_failed"), "run_id": "a/../b?x=1&y=<2>#", "agent_id": "é d"}
    message = render(linked(), "plain", payload)
    expected = "https://edit.mosaic.so/agents/%C3%A9%20d/runs/a%2F..%2Fb%3Fx%3D1%26y%3D%3C2%3E%23"
    assert f"Open in Mosaic: {expected}\n" in message.text + "\n"


@pytest.mark.parametrize("kind", ["plain", "slack", "telegram", "email"])
def test_a_reconciled_event_says_the_webhook_never_arrived(kind: str) -> None:
    message = render(linked(), kind, reconciled(), limits=LIMITS[kind])
    plain = everything(message).replace("&#39;", "'").replace("&#x27;", "'")
    assert RECOVERED_NOTE in plain
    webhook_sent = render(linked(), kind, sample("run_finished_failed"), limits=LIMITS[kind])
    assert "Recovered from Mosaic" not in everything(webhook_sent)


@pytest.mark.parametrize("kind", ["plain", "slack", "telegram", "email"])
def test_run_stale_says_how_long_the_run_has_been_quiet(kind: str) -> None:
    message = render(linked(), kind, stale(), limits=LIMITS[kind])
    assert STALE_NOTE in everything(message)
    assert message.extra["status_word"] == "No news"
    assert everything(message).startswith("⏰ ")
    if kind == "slack":
        assert STALE_NOTE in message.text  # the notification says it too
    if kind == "email":
        assert message.subject is not None and message.subject.startswith("⏰ No news: ")


def test_run_stale_context() -> None:
    ctx = context_of(Event.model_validate(stale()))
    assert (ctx["source"], ctx["silent_for"], ctx["stale_note"]) == ("watch", 7200.0, STALE_NOTE)
    assert ctx["source_note"] is None
    assert ctx["title"] == "⏰ No news: Shorts cutter run 7f8d9c2b"
    assert status_style("RUN_STALE", "running")[:2] == ("No news", "⏰")


@pytest.mark.parametrize(
    ("relay_key", "counts", "expected"),
    [
        ({"source": "watch"}, None, "No news from this run — still running"),
        ({"source": "watch", "silent_for": "2h"}, None, "No news from this run — still running"),
        (
            {"source": "watch", "silent_for": 90},
            None,
            "No news from this run for 1m 30s — still running",
        ),
    ],
)
def test_a_stale_note_without_a_duration_or_counts(
    relay_key: dict[str, Any], counts: Any, expected: str
) -> None:
    payload = {**stale(), "_relay": relay_key, "node_status_counts": counts}
    ctx = context_of(Event.model_validate(payload))
    assert ctx["stale_note"] == expected


def test_a_webhook_event_is_a_webhook_with_no_silence() -> None:
    ctx = context_of(Event.model_validate({**sample("run_progress"), "_relay": {"silent_for": 5}}))
    assert (ctx["source"], ctx["silent_for"], ctx["stale_note"], ctx["source_note"]) == (
        "webhook",
        None,
        None,
        None,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_from_mosaic_shows_and_agents_in_relay_yaml_win(kind: str) -> None:
    api_names = {CUTTER: "Name in Mosaic", SHORTS: "Other name in Mosaic"}
    r = Renderer({}, {SHORTS: "Shorts cutter"}, api_names=api_names)
    failed = everything(render(r, kind, sample("run_finished_failed"), limits=LIMITS[kind]))
    assert "Name in Mosaic" in failed
    youtube = sample("run_finished_completed_youtube")
    named = everything(render(r, kind, youtube, limits=LIMITS[kind]))
    assert "Shorts cutter" in named and "Other name in Mosaic" not in named


def test_names_learned_after_construction_show_without_a_new_renderer() -> None:
    api_names: dict[str, str] = {}
    r = Renderer({}, {}, api_names=api_names)
    assert "agent 0b7e2a10" in render(r, "plain", sample("run_finished_failed")).text
    api_names[CUTTER] = "Clip cutter from Mosaic"
    assert "Clip cutter from Mosaic" in render(r, "plain", sample("run_finished_failed")).text


@pytest.mark.parametrize(
    "payload", [stale(), reconciled(), sample("run_finished_completed_youtube")]
)
def test_slack_blocks_with_a_run_link_and_notes_are_valid_block_kit(
    payload: dict[str, Any],
) -> None:
    message = render(linked(), "slack", payload, limits=LIMITS["slack"])
    assert check_blocks(message.blocks or []) is None
