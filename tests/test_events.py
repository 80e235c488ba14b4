"""The event model: node counts are checked, long lists are capped in the typed view."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field, StrictStr, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from relay.app import RELAY, build_app
from relay.cards import replies_for
from relay.config import load_config
from relay.events import (
    MAX_ITEMS,
    MAX_NODE_COUNT,
    Event,
    OpenModel,
    describe_error,
    lenient,
    lenient_list,
)
from relay.receiver import SIGNATURE_HEADER
from tests.conftest import BASE_CONFIG, SECRET, sample

Client = TestClient[Any, web.Application]
PATH = "/webhooks/mosaic"
FUZZ = settings(
    max_examples=int(os.environ.get("RELAY_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
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


def test_a_cut_list_is_still_a_plain_json_list() -> None:
    event = from_json(long_event(MAX_ITEMS + 5))
    assert event.left_out("outputs") == 5
    dumped = json.loads(event.model_dump_json())
    assert dumped["outputs"] == [output.model_dump() for output in event.outputs]
    assert from_json(dumped).left_out("outputs") == 0


@pytest.mark.parametrize("value", ["junk", {"id": "o1"}, ("t",), None, 3])
def test_a_list_field_that_is_no_list_reads_as_empty(value: Any) -> None:
    for validate in VALIDATORS[:1] if isinstance(value, tuple) else VALIDATORS:
        event = validate({**BASE, "outputs": value, "errors": value})
        assert (event.outputs, event.errors) == ([], [])


# --- the same reading as plain Python validators ----------------------------------------------
# The models build their checks from pydantic-core schemas so that an ordinary event costs no
# Python call. These reference models say the same with Python validators: both must read every
# payload alike (values, errors, extra fields, counts left out).


def _ref_count(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        out_of_range = (
            "greater_than_equal",
            "less_than_equal",
            "int_parsing_size",
            "finite_number",
        )
        if any(error["type"] in out_of_range for error in exc.errors()):
            raise
        return 0


def _ref_counts(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    return handler(value) if isinstance(value, dict) else None


RefStr = Annotated[str | None, WrapValidator(lenient)]
RefCount = Annotated[int, Field(ge=0, le=MAX_NODE_COUNT), WrapValidator(_ref_count)]
RefList = WrapValidator(lenient_list)


class RefCounts(OpenModel):
    completed: RefCount = 0
    in_progress: RefCount = 0
    failed: RefCount = 0


class RefOutput(OpenModel):
    id: RefStr = None
    video_url: RefStr = None
    thumbnail_url: RefStr = None
    completed_at: RefStr = None
    original_node_id: RefStr = None


class RefInput(OpenModel):
    video_url: RefStr = None
    thumbnail_url: RefStr = None


class RefNode(OpenModel):
    original_node_id: RefStr = None
    status: RefStr = None
    status_message: RefStr = None
    outputs: Annotated[list[RefOutput], RefList] = []


class RefTrigger(OpenModel):
    type: RefStr = None
    channel_id: RefStr = None
    video_id: RefStr = None
    video_title: RefStr = None
    video_url: RefStr = None
    triggered_at: RefStr = None
    trigger_id: RefStr = None


class RefEvent(OpenModel):
    flag: StrictStr
    agent_id: StrictStr
    run_id: StrictStr
    status: StrictStr
    node_status_counts: Annotated[RefCounts | None, WrapValidator(_ref_counts)] = None
    triggered_by: Annotated[RefTrigger | None, WrapValidator(lenient)] = None
    status_message: RefStr = None
    inputs: Annotated[list[RefInput], RefList] = []
    outputs: Annotated[list[RefOutput], RefList] = []
    updated_nodes: Annotated[list[RefNode], RefList] = []
    needs_credits: Annotated[bool | None, WrapValidator(lenient)] = None
    errors: Annotated[list[Any], RefList] = []


def ref_left_out(data: dict[str, Any]) -> dict[str, int]:
    def length(value: Any) -> int:
        return len(value) if isinstance(value, list) else 0

    def node_outputs(node: Any) -> int:
        return length(node.get("outputs")) if isinstance(node, dict) else 0

    counts = {key: max(0, length(data.get(key)) - MAX_ITEMS) for key in LEFT_OUT[:4]}
    nodes = data.get("updated_nodes")
    if isinstance(nodes, list):
        kept = sum(max(0, node_outputs(node) - MAX_ITEMS) for node in nodes[:MAX_ITEMS])
        counts["node_outputs"] = kept + sum(map(node_outputs, nodes[MAX_ITEMS:]))
    return counts


LEFT_OUT = ("inputs", "outputs", "updated_nodes", "errors", "node_outputs")
odd = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**31), max_value=10**31),
    st.integers(min_value=-2, max_value=2),
    st.integers(min_value=MAX_NODE_COUNT - 2, max_value=MAX_NODE_COUNT + 2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e300, -0.0, 2.0, 5.5, 1e16, -1.0]),
    st.text(max_size=4),
    st.sampled_from(["7", "-5", " 3 ", "1e3", "many", "1.0", "1_000", "9" * 40]),
)
anything = st.recursive(
    odd,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
texts = st.text(max_size=3) | anything


def objects(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Objects with some of ``fields`` and an extra one."""
    return st.fixed_dictionaries({}, optional={**fields, "extra": anything})


def lists(items: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Short lists of items or junk, lists of items about ``MAX_ITEMS`` long, or any value."""
    short = st.lists(items | anything, max_size=4)
    return short | st.lists(items, min_size=MAX_ITEMS - 1, max_size=MAX_ITEMS + 2) | anything


outputs = lists(objects(id=texts, video_url=texts, completed_at=texts))
payloads = st.fixed_dictionaries(
    {"flag": st.sampled_from(["RUN_PROGRESS", "TEST"]) | anything},
    optional={
        "node_status_counts": objects(completed=odd, in_progress=odd, failed=odd) | anything,
        "triggered_by": objects(type=texts, channel_id=texts, video_url=texts) | anything,
        "status_message": texts,
        "inputs": lists(objects(video_url=texts, thumbnail_url=texts)),
        "outputs": outputs,
        "updated_nodes": lists(objects(original_node_id=texts, status=texts, outputs=outputs)),
        "needs_credits": anything,
        "errors": lists(anything),
    },
).map(lambda data: {"agent_id": "a", "run_id": "r", "status": "running", **data})


def reading(model: type[OpenModel], data: dict[str, Any], via_json: bool) -> Any:
    try:
        event = (
            model.model_validate_json(json.dumps(data)) if via_json else model.model_validate(data)
        )
    except ValidationError as exc:
        return exc.errors(include_url=False)
    return event.model_dump(), event.model_extra, event.model_fields_set


@FUZZ
@given(payloads, st.booleans())
def test_the_models_read_every_payload_as_python_validators_do(
    data: dict[str, Any], via_json: bool
) -> None:
    read = reading(Event, data, via_json)
    assert read == reading(RefEvent, data, via_json)
    if not isinstance(read, list):  # not refused: the same counts left out
        event = (
            Event.model_validate_json(json.dumps(data)) if via_json else Event.model_validate(data)
        )
        expected = ref_left_out(data)
        assert {name: event.left_out(name) for name in expected} == expected
