"""The event model: node counts are checked, long lists are capped in the typed view."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from relay.app import RELAY, build_app
from relay.cards import replies_for
from relay.config import load_config
from relay.events import MAX_ITEMS, MAX_NODE_COUNT, Event, describe_error
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SECRET, sample

Client = TestClient[Any, web.Application]
PATH = "/webhooks/mosaic"
BASE = {"flag": "RUN_PROGRESS", "agent_id": "a", "run_id": "r", "status": "running"}


def from_json(data: dict[str, Any]) -> Event:
    return Event.model_validate_json(json.dumps(data))


VALIDATORS = (Event.model_validate, from_json)


def with_counts(counts: Any) -> dict[str, Any]:
    return {**BASE, "node_status_counts": counts}


# --- node counts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "where", "message"),
    [
        ({"completed": -100_000_000, "failed": 100_000_001}, "completed", "greater than or equal"),
        ({"completed": -(10**15)}, "completed", "greater than or equal"),
        ({"failed": 10**29}, "failed", "less than or equal to 1000000"),
        ({"in_progress": MAX_NODE_COUNT + 1}, "in_progress", "less than or equal"),
        ({"completed": "-5"}, "completed", "greater than or equal"),
        ({"completed": -1.0}, "completed", "greater than or equal"),
        ({"completed": 1e300}, "completed", "exceeded maximum size"),
    ],
)
def test_counts_out_of_range_reject_the_event(
    counts: dict[str, Any], where: str, message: str
) -> None:
    for validate in VALIDATORS:
        with pytest.raises(ValidationError) as caught:
            validate(with_counts(counts))
        assert describe_error(caught.value).startswith(f"node_status_counts.{where}: ")
        assert message in describe_error(caught.value)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"completed": 0, "in_progress": MAX_NODE_COUNT, "failed": 3}, (0, MAX_NODE_COUNT, 3)),
        ({"completed": "7", "failed": 2.0}, (7, 0, 2)),
        ({"completed": None, "in_progress": "many", "failed": [1]}, (0, 0, 0)),
        ({"completed": 5.5, "in_progress": {"x": 1}}, (0, 0, 0)),
        ("weird", (0, 0, 0)),
        ([1, 2], (0, 0, 0)),
        (None, (0, 0, 0)),
    ],
)
def test_counts_that_are_no_numbers_still_read_as_zero(
    counts: Any, expected: tuple[int, int, int]
) -> None:
    event = Event.model_validate(with_counts(counts))
    assert (event.counts.completed, event.counts.in_progress, event.counts.failed) == expected


def test_extra_count_fields_are_kept_unchecked() -> None:
    event = Event.model_validate(with_counts({"completed": 1, "skipped": -4, "queued": 10**20}))
    assert event.model_dump()["node_status_counts"]["skipped"] == -4


@pytest.fixture
async def client(
    write_config: Callable[[str], Path], aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    app = build_app(load_config(write_config(BASE_CONFIG), env={}))
    return await aiohttp_client(app)


async def test_a_webhook_with_negative_counts_is_refused_with_422(client: Client) -> None:
    body = sample("run_progress")
    body["node_status_counts"] = {
        "completed": -100_000_000,
        "in_progress": 0,
        "failed": 100_000_001,
    }
    answer = await client.post(PATH, data=json.dumps(body), headers={SIGNATURE_HEADER: SECRET})
    assert answer.status == 422
    data = await answer.json()
    assert data["error"] == "not a Mosaic event"
    assert data["details"][0]["loc"] == ["node_status_counts", "completed"]
    assert "greater than or equal to 0" in data["details"][0]["msg"]
    assert await client.app[RELAY].store.status() == []  # nothing stored, nothing to deliver


# --- long lists ------------------------------------------------------------------------------


def long_event(count: int) -> dict[str, Any]:
    def output(i: int) -> dict[str, Any]:
        return {"id": f"o{i}", "video_url": f"https://example.com/{i}.mp4"}

    nodes: list[Any] = [
        {"original_node_id": f"n{i}", "status": "failed", "outputs": [output(i), output(-i)]}
        for i in range(count)
    ]
    return {
        **BASE,
        "flag": "RUN_FINISHED",
        "inputs": [{"video_url": f"https://example.com/in{i}.mp4"} for i in range(count)],
        "outputs": [output(i) for i in range(count)],
        "updated_nodes": nodes,
        "errors": [{"message": f"error {i}"} for i in range(count)],
    }


def test_the_typed_view_takes_the_first_items_and_counts_the_rest() -> None:
    for validate in VALIDATORS:
        event = validate(long_event(20_000))
        assert [node.original_node_id for node in event.updated_nodes] == [
            f"n{i}" for i in range(MAX_ITEMS)
        ]
        assert len(event.inputs) == len(event.outputs) == len(event.errors) == MAX_ITEMS
        for name in ("inputs", "outputs", "updated_nodes", "errors"):
            assert event.left_out(name) == 20_000 - MAX_ITEMS
        assert event.left_out("node_outputs") == 2 * (20_000 - MAX_ITEMS)


def test_short_lists_leave_nothing_out_and_junk_items_are_still_dropped() -> None:
    event = Event.model_validate({**long_event(3), "outputs": ["junk", {"id": "ok"}]})
    assert [output.id for output in event.outputs] == ["ok"]
    for name in ("inputs", "outputs", "updated_nodes", "errors", "node_outputs", "other"):
        assert event.left_out(name) == 0


def test_one_event_never_fans_out_into_more_than_forty_card_replies() -> None:
    replies = replies_for(Event.model_validate(long_event(20_000)))
    assert len(replies) == 2 * MAX_ITEMS


@pytest.mark.parametrize(
    ("relay_key", "expected"),
    [
        (None, "webhook"),
        ({"source": "reconciled"}, "reconciled"),
        ({"source": "watch", "silent_for": 7200}, "watch"),
        ({"source": "elsewhere"}, "webhook"),
        ("watch", "webhook"),
    ],
)
def test_the_source_is_the_relays_note_else_a_webhook(relay_key: Any, expected: str) -> None:
    data = dict(BASE) if relay_key is None else {**BASE, "_relay": relay_key}
    event = from_json(data)
    assert event.source == expected
    assert event.relay_note == (relay_key if isinstance(relay_key, dict) else {})
