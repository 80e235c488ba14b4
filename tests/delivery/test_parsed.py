"""Stored events validated once: what the ingest path keeps is exactly what parsing gives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.delivery import parsed
from relay.delivery.parsed import CHECKED_VALUES, KEPT_EVENTS, parse_stored, remember
from relay.events import Event
from relay.ingest import canonical_json
from relay.mosaic.models import Run
from relay.mosaic.reconcile import finished_payload
from relay.receiver import decode_event
from tests.conftest import sample, sample_names
from tests.mosaic.rig import Rig, open_rig


@pytest.fixture(autouse=True)
def empty() -> Iterator[None]:
    parsed.forget_all()
    yield
    parsed.forget_all()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = await open_rig(tmp_path)
    yield rig
    await rig.store.close()


class NoParse:
    """Stands in for ``json`` in ``relay.delivery.parsed``: a parse fails the test."""

    @staticmethod
    def loads(body: bytes) -> Any:
        raise AssertionError("parsed again")


def fresh(body: bytes) -> Event:
    return Event.model_validate(json.loads(body))


def assert_exactly(kept: Event, body: bytes) -> None:
    """``kept`` is what parsing ``body`` gives: equal, and the same in the order templates see."""
    again = fresh(body)
    assert kept == again
    dumped = kept.model_dump(mode="json")
    assert json.dumps(dumped) == json.dumps(again.model_dump(mode="json"))
    for name in ("inputs", "outputs", "updated_nodes", "errors", "node_outputs"):
        assert kept.left_out(name) == again.left_out(name)


async def stored_body(rig: Rig) -> bytes:
    (record,) = await rig.store.list_events(limit=2)
    full = await rig.store.get_event(record.event_id)
    assert full is not None and full.body is not None
    return full.body


@pytest.mark.parametrize("name", sample_names())
async def test_an_accepted_webhook_is_kept_as_parsing_its_stored_body_gives(
    rig: Rig, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps({**sample(name), "_relay": {"source": "forged"}}).encode()
    event, canonical = decode_event(body)
    await rig.ingest.event(event, canonical)
    stored = await stored_body(rig)
    monkeypatch.setattr(parsed, "json", NoParse)
    kept = parse_stored(stored)
    assert kept is event
    monkeypatch.undo()
    assert_exactly(kept, stored)


async def test_a_reconciled_event_is_kept_as_parsing_its_stored_body_gives(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Run.model_validate(
        {"run_id": "run-9", "agent_id": "agent-1", "status": "failed",
         "node_status_counts": {"completed": 3, "in_progress": 0, "failed": 1},
         "outputs": [{"id": "o1", "video_url": "https://example.com/o1.mp4"}],
         "needs_credits": True, "errors": [{"message": "boom", "node_id": "n1"}]}
    )  # fmt: skip
    await rig.ingest.built(finished_payload(run, detail=run), "reconciled")
    stored = await stored_body(rig)
    monkeypatch.setattr(parsed, "json", NoParse)
    kept = parse_stored(stored)
    monkeypatch.undo()
    assert kept.relay_note == {"source": "reconciled"}
    assert_exactly(kept, stored)


async def test_a_webhook_whose_extra_keys_are_out_of_order_is_parsed_from_its_body(
    rig: Rig,
) -> None:
    """Templates may iterate over fields Mosaic adds: they see them in the stored body's order,
    whichever worker delivers the event."""
    payload = {**sample("run_progress"), "zeta": 1, "alpha": {"z": 1, "a": 2}}
    event, canonical = decode_event(json.dumps(payload).encode())
    assert list(event.model_extra or {}) == ["zeta", "alpha"]
    await rig.ingest.event(event, canonical)
    stored = await stored_body(rig)
    kept = parse_stored(stored)
    assert kept is not event
    assert list(kept.model_extra or {}) == ["alpha", "zeta"]
    assert_exactly(kept, stored)


@pytest.mark.parametrize(
    "payload",
    [
        {"errors": [{"b": 1, "a": 2}]},  # free-form JSON out of order
        {"errors": [(1, 2)]},  # not a JSON type: a list once stored
        {"extra": {1: "a"}},  # a key that is not text
        {"extra": list(range(CHECKED_VALUES + 1))},  # too big to check on the event loop
    ],
    ids=["unsorted", "tuple", "int key", "huge"],
)
def test_an_event_that_parsing_would_not_give_is_not_kept(payload: dict[str, Any]) -> None:
    event = Event.model_validate({**sample("run_progress"), **payload})
    body = canonical_json({**sample("run_progress"), **payload})
    remember(body, event)
    assert parse_stored(body) is not event


def test_the_jobs_of_one_event_share_one_parse() -> None:
    body = canonical_json(sample("run_progress"))
    first = parse_stored(body)
    assert parse_stored(bytes(body)) is first
    assert parse_stored(canonical_json(sample("run_started_youtube"))) is not first


def test_the_oldest_events_are_dropped_past_the_bound() -> None:
    bodies = [canonical_json({**sample("run_progress"), "run_id": f"r{i}"}) for i in range(300)]
    events = [parse_stored(body) for body in bodies]
    assert len(bodies) > KEPT_EVENTS
    assert parse_stored(bodies[-1]) is events[-1]
    assert parse_stored(bodies[0]) is not events[0]


def test_kept_bodies_are_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsed, "KEPT_BYTES", 3_000)
    bodies = [
        canonical_json({**sample("run_progress"), "run_id": str(i), "pad": "x" * 1_000})
        for i in range(3)
    ]
    events = [parse_stored(body) for body in bodies]
    assert parse_stored(bodies[2]) is events[2]
    assert parse_stored(bodies[0]) is not events[0]


def test_a_body_that_is_not_an_event_raises() -> None:
    with pytest.raises(ValueError):
        parse_stored(b"{not json")
    with pytest.raises(ValueError):
        parse_stored(canonical_json({"flag": "RUN_PROGRESS"}))
