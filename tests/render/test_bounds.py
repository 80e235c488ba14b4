"""What the renderer derives from event numbers and lists stays small, whatever the event says.

Events are checked at the door (see tests/test_events.py); these build events past the checks
(``model_construct``), as an event stored before them would be, and render every kind.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from relay.events import MAX_ITEMS, Event, NodeCounts
from relay.render import Renderer
from relay.render import context as context_module
from tests.render.helpers import KINDS, LIMITS, context_of, everything, renderer, sample

INSANE_COUNTS = [
    {"completed": -100_000_000, "in_progress": 0, "failed": 100_000_001},
    {"completed": -(10**15), "in_progress": 0, "failed": 10**15 + 1},
    {"completed": 10**30, "in_progress": -(10**30), "failed": 1},
    {"completed": 10**29, "in_progress": 10**29, "failed": 10**29},
]


def unchecked(counts: dict[str, Any]) -> Event:
    """A running event whose counts never went through validation."""
    payload = sample("run_progress")
    payload.pop("node_status_counts")
    event = Event.model_validate(payload)
    return event.model_copy(update={"node_status_counts": NodeCounts.model_construct(**counts)})


def render_all(r: Renderer, event: Event, template: str | None = None) -> dict[str, str]:
    return {
        kind: everything(
            r.render(
                kind,
                template,
                event,
                event_id="evt-1",
                route="r",
                channel="c",
                limits=LIMITS[kind],
                run_started_at=1_000.0,
                now=1_065.0,
            ),
            kind,
        )
        for kind in KINDS
    }


@pytest.mark.parametrize("counts", INSANE_COUNTS)
def test_insane_counts_give_a_small_progress(counts: dict[str, Any]) -> None:
    ctx = context_of(unchecked(counts))
    progress = ctx["progress"]
    assert 0 <= progress["percent"] <= 100
    assert 0 < len(progress["bar"]) <= 12
    assert len(progress["summary"]) < 80
    for key in ("completed", "in_progress", "failed"):
        assert 0 <= progress[key] <= 1_000_000


@pytest.mark.parametrize("counts", INSANE_COUNTS)
def test_insane_counts_render_every_kind_in_little_memory(counts: dict[str, Any]) -> None:
    r = renderer()
    tracemalloc.start()
    try:
        texts = render_all(r, unchecked(counts))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    for text in texts.values():
        assert "nodes done" in text and len(text) < 10_000


def test_templates_cannot_turn_event_numbers_into_huge_output() -> None:
    source = (
        "{{ status_message | truncate(10**12) }}|{{ progress.total | duration }}|"
        "{{ (10**300) | duration }}|{{ progress.completed * 1000000 | duration }}|"
        "{{ '▰' * progress.completed }}"
    )
    r = renderer({"numbers": {"text": source}})
    texts = render_all(r, unchecked(INSANE_COUNTS[3]), "numbers")
    for text in texts.values():
        assert len(text) < 1_500_000  # a count is 1,000,000 at most


# --- long lists ------------------------------------------------------------------------------


def long_failed_event(count: int) -> dict[str, Any]:
    payload = sample("run_finished_failed")
    payload["outputs"] = [
        {"id": f"o{i}", "video_url": f"https://example.com/{i}.mp4"} for i in range(count)
    ]
    payload["errors"] = [{"message": f"error {i}"} for i in range(count)]
    payload["updated_nodes"] = [{"original_node_id": f"n{i}"} for i in range(count)]
    return payload


def test_the_context_holds_the_first_items_and_counts_the_rest() -> None:
    ctx = context_of(Event.model_validate(long_failed_event(20_000)))
    for name in ("outputs", "errors", "updated_nodes"):
        assert len(ctx[name]) == MAX_ITEMS
        assert len(ctx["event"][name]) == MAX_ITEMS
        assert ctx[f"{name}_more"] == 19_980
    assert len(ctx["error_messages"]) == MAX_ITEMS
    assert (ctx["inputs_more"], ctx["node_outputs_more"]) == (0, 0)


def test_node_outputs_more_counts_every_nodes_outputs() -> None:
    payload = sample("run_progress")
    node = payload["updated_nodes"][0]
    payload["updated_nodes"] = [{**node, "original_node_id": f"n{i}"} for i in range(30)]
    ctx = context_of(Event.model_validate(payload))
    assert (len(ctx["node_outputs"]), ctx["node_outputs_more"]) == (MAX_ITEMS, 10)


@pytest.mark.parametrize("kind", KINDS)
def test_default_messages_say_how_many_outputs_and_errors_they_leave_out(kind: str) -> None:
    text = render_all(renderer(), Event.model_validate(long_failed_event(20_000)))[kind]
    assert "… and 19,990 more outputs" in text
    shown_errors = 10 if kind == "email" else 5
    assert f"… and {20_000 - shown_errors:,} more" in text


@pytest.mark.parametrize("kind", KINDS)
def test_default_messages_mention_nothing_left_out_when_all_is_shown(kind: str) -> None:
    text = render_all(renderer(), Event.model_validate(long_failed_event(3)))[kind]
    assert "more" not in text


# --- one context per event -------------------------------------------------------------------


def test_the_deliveries_of_one_event_share_one_context(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real = context_module.event_context

    def counting(event: Event, **kwargs: Any) -> dict[str, Any]:
        built.append(event.run_id)
        return real(event, **kwargs)

    monkeypatch.setattr(context_module, "event_context", counting)
    r = renderer()
    first, second = (Event.model_validate(sample(name)) for name in ("run_progress", "test"))
    for _ in range(17):
        render_all(r, first)
    render_all(r, second)
    render_all(r, first)
    assert built == [first.run_id, second.run_id]


def test_each_delivery_gets_its_own_route_channel_and_elapsed() -> None:
    r = renderer({"who": {"text": "{{ route }} {{ channel }} {{ event_id }} {{ elapsed }}"}})
    event = Event.model_validate(sample("run_progress"))
    texts = []
    for n in range(3):
        message = r.render(
            "plain", "who", event, event_id=f"e{n}", route=f"r{n}", channel=f"c{n}",
            limits=LIMITS["plain"], run_started_at=1_000.0, now=1_000.0 + n,
        )  # fmt: skip
        texts.append(message.text)
    assert texts == ["r0 c0 e0 0.0", "r1 c1 e1 1.0", "r2 c2 e2 2.0"]
