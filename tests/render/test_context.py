from __future__ import annotations

from typing import Any

import pytest

from relay.events import Event
from relay.render.context import status_style
from tests.render.helpers import context_of, sample


def context(payload: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    options = {"event_id": "evt-1", "run_started_at": 1_000.0, "now": 1_065.0, **overrides}
    return context_of(Event.model_validate(payload), **options)


@pytest.mark.parametrize(
    ("flag", "status", "word", "emoji"),
    [
        ("RUN_STARTED", "running", "Started", "🚀"),
        ("RUN_PROGRESS", "running", "Running", "⏳"),
        ("RUN_FINISHED", "completed", "Finished", "✅"),
        ("RUN_FINISHED", "failed", "Failed", "❌"),
        ("RUN_FINISHED", "partial_complete", "Partially complete", "⚠️"),
        ("RUN_FINISHED", "cancelled", "Cancelled", "🛑"),
        ("RUN_PROGRESS", "failed", "Failed", "❌"),
        ("TEST", "running", "Test", "🧪"),
        ("RUN_PAUSED", "paused_for_review", "Paused for review", "ℹ️"),
    ],
)
def test_status_style(flag: str, status: str, word: str, emoji: str) -> None:
    assert status_style(flag, status)[:2] == (word, emoji)
    assert status_style(flag, status)[2].startswith("#")


def test_failed_run_context() -> None:
    ctx = context(sample("run_finished_failed"))
    assert ctx["agent_name"] == "Clip cutter"
    assert ctx["title"] == "❌ Failed: Clip cutter run c2d9e8f7"
    assert ctx["progress"] == {
        "completed": 6,
        "in_progress": 0,
        "failed": 2,
        "total": 8,
        "percent": 75,
        "bar": "▰▰▰▰▰▰▱▱",
        "summary": "6/8 nodes done, 2 failed",
    }
    assert ctx["trigger"]["type"] == "none"
    assert ctx["trigger"]["video_title"] is None
    assert ctx["trigger_label"] == "API"
    assert ctx["needs_credits"] is True
    assert ctx["error_messages"] == ["node 3f1a: insufficient credits"]
    assert ctx["reason_label"] == "Why it failed"
    assert ctx["elapsed"] == 65.0
    assert ctx["is_terminal"] is True
    assert ctx["image_url"] is None
    assert (ctx["route"], ctx["channel"], ctx["event_id"]) == ("r", "c", "evt-1")


def test_youtube_and_extra_fields() -> None:
    payload = sample("run_started_youtube")
    payload["triggered_by"]["playlist"] = "PL1"
    payload["future_field"] = {"nested": ["kept"]}
    ctx = context(payload, run_started_at=None)
    assert ctx["trigger"]["type"] == "youtube"
    assert ctx["trigger"]["video_title"] == "Never Gonna Give You Up"
    assert ctx["trigger"]["playlist"] == "PL1"
    assert ctx["event"]["future_field"] == {"nested": ["kept"]}
    assert ctx["status_word"] == "Started"
    assert ctx["agent_name"] == "Shorts cutter"
    assert ctx["elapsed"] is None
    assert ctx["progress"]["summary"] == "1/6 nodes done (16%)"
    assert ctx["image_url"] == "https://storage.example.com/runs/7f8d9c2b/thumb.jpg"


def test_progress_outputs_and_bar() -> None:
    ctx = context(sample("run_progress"))
    assert ctx["progress"]["bar"] == "▰▰▰▰▱▱▱"
    assert ctx["outputs"] == []
    assert [o["video_url"] for o in ctx["node_outputs"]] == [
        "https://storage.example.com/renders/7ba7b810/clip.mp4"
    ]
    assert ctx["image_url"] == "https://storage.example.com/renders/7ba7b810/thumb.jpg"


def test_bar_is_scaled_for_many_nodes_and_empty_counts() -> None:
    payload = sample("run_progress")
    payload["node_status_counts"] = {"completed": 50, "in_progress": 50, "failed": 0}
    assert context(payload)["progress"]["bar"] == "▰" * 6 + "▱" * 6
    payload["node_status_counts"] = None
    progress = context(payload)["progress"]
    assert (progress["total"], progress["percent"], progress["bar"]) == (0, 0, "▱" * 12)


def test_unknown_agent_uses_the_id_and_image_must_be_http() -> None:
    payload = sample("run_finished_partial_schedule")
    payload["agent_id"] = "agent-x"
    payload["outputs"][0]["thumbnail_url"] = "javascript:alert(1)"
    ctx = context(payload)
    assert ctx["agent_name"] == "agent-x"
    payload["agent_id"] = "9d8c7b6a-1111-4222-8333-444455556666"
    assert context(payload)["agent_name"] == "agent 9d8c7b6a"  # an unnamed UUID, shortened
    assert ctx["image_url"] == "https://storage.example.com/runs/e1f2a3b4/thumb.jpg"


def test_event_text_is_cleaned() -> None:
    payload = sample("run_finished_failed")
    payload["status_message"] = "bad\x00\u202e\r\nline"
    payload["errors"] = [{"message": "m1"}, {"code": 7}, 42, "  "]
    ctx = context(payload)
    assert ctx["status_message"] == "bad\nline"
    assert ctx["event"]["status_message"] == "bad\nline"
    assert ctx["error_messages"] == ["m1", '{"code": 7}', "42"]


def test_documented_variables_are_all_present() -> None:
    documented = {
        "event",
        "flag",
        "status",
        "status_word",
        "emoji",
        "color",
        "title",
        "agent_id",
        "agent_name",
        "run_id",
        "run_short",
        "trigger",
        "trigger_label",
        "inputs",
        "outputs",
        "node_outputs",
        "image_url",
        "progress",
        "updated_nodes",
        "status_message",
        "reason_label",
        "errors",
        "error_messages",
        "inputs_more",
        "outputs_more",
        "node_outputs_more",
        "updated_nodes_more",
        "errors_more",
        "needs_credits",
        "elapsed",
        "is_terminal",
        "route",
        "channel",
        "event_id",
        "run_url",
        "source",
        "source_note",
        "silent_for",
        "stale_note",
    }
    for name in ("run_finished_failed", "test", "run_progress"):
        ctx = context(sample(name))
        assert set(ctx) == documented
        assert set(ctx["trigger"]) >= {
            "type",
            "channel_id",
            "video_id",
            "video_title",
            "video_url",
            "triggered_at",
            "trigger_id",
        }
