"""Pydantic models of Mosaic run webhooks.

Forward compatible: unknown flags and extra fields are accepted and kept. Only ``flag``,
``agent_id``, ``run_id`` and ``status`` are required; any other field with an unexpected shape is
dropped from the typed view (the stored payload keeps it) instead of rejecting the event.

Lists (``inputs``, ``outputs``, ``updated_nodes``, each node's ``outputs``, ``errors``) keep their
first ``MAX_ITEMS`` items in the typed view, so the work an event costs stays small however long
its lists are; ``Event.left_out`` tells how many items were not taken.

One exception to the leniency: the node counts drive arithmetic (progress, card order), so a
count that is a number must be a whole number from 0 to ``MAX_NODE_COUNT``, or the event is
rejected. A count that is not a number at all (``null``, ``"many"``) still reads as 0,
``node_status_counts`` that is not an object is still dropped, and extra count fields are kept
unchecked.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
)
from pydantic_core import CoreSchema
from pydantic_core import core_schema as cs

__all__ = [
    "EVENT_SOURCES",
    "KNOWN_FLAGS",
    "MAX_ITEMS",
    "MAX_NODE_COUNT",
    "RELAY_KEY",
    "TERMINAL_STATUSES",
    "CappedList",
    "Event",
    "Input",
    "Lenient",
    "NodeCounts",
    "OpenModel",
    "OptStr",
    "Output",
    "Trigger",
    "UpdatedNode",
    "describe_error",
    "lenient",
    "lenient_list",
]

KNOWN_FLAGS = ("RUN_STARTED", "RUN_PROGRESS", "RUN_FINISHED", "RUN_STALE", "TEST")
"""``RUN_STALE`` is the relay's own: a running run it has had no news of for a while."""
RELAY_KEY = "_relay"
"""The reserved top-level key of an event the relay built itself: ``{"source": ...}``. The
receiver drops it from webhooks, so it cannot be sent from outside."""
EVENT_SOURCES = ("webhook", "reconciled", "watch")
"""Where an event came from: a webhook, Mosaic's API (a run whose webhook never arrived), or the
relay's own watch of runs that went quiet."""
TERMINAL_STATUSES = frozenset({"completed", "partial_complete", "failed", "cancelled"})
MAX_NODE_COUNT = 1_000_000
"""The largest node count accepted (far beyond any real agent's graph)."""
MAX_ITEMS = 20
"""The items of a list the typed view takes; the rest only count (``Event.left_out``)."""
_CAPPED = ("inputs", "outputs", "updated_nodes", "errors")
_OUT_OF_RANGE = frozenset(
    {"greater_than_equal", "less_than_equal", "int_parsing_size", "finite_number"}
)


def lenient(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A field with an unexpected shape reads as None instead of refusing the whole model."""
    try:
        return handler(value)
    except ValidationError:
        return None


def lenient_list(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """The first ``MAX_ITEMS`` items that validate (others are skipped); not a list reads as [].
    ``Capped`` does the same, calling Python only for lists that need it, and counts what it
    leaves out."""
    if not isinstance(value, list):
        return []
    items = []
    for item in value[:MAX_ITEMS]:
        try:
            items.append(handler([item])[0])
        except ValidationError:
            continue
    return items


def describe_error(exc: ValidationError) -> str:
    """The first problem in one line, e.g. ``node_status_counts.failed: Input should be ...``."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "event"
    return f"{where}: {first['msg']}"


class CappedList(list[Any]):
    """A list the typed view cut: ``left_out`` items were not taken (``nested_left_out``: the
    ``outputs`` of the updated nodes not taken). Only lists that lost items are one."""

    left_out = 0
    nested_left_out = 0


def _left_out(value: Any) -> int:
    return value.left_out if isinstance(value, CappedList) else 0


def _nested_left_out(value: Any) -> int:
    return value.nested_left_out if isinstance(value, CappedList) else 0


def _node_outputs(node: Any) -> int:
    outputs = node.get("outputs") if isinstance(node, dict) else None
    return len(outputs) if isinstance(outputs, list) else 0


def _cap(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A list too long, or with an item that does not validate: its first ``MAX_ITEMS`` items,
    those that validate; not a list: []."""
    if not isinstance(value, list):
        return []
    items = handler(value[:MAX_ITEMS])
    if len(value) <= MAX_ITEMS:
        return items
    capped = CappedList(items)
    capped.left_out = len(value) - MAX_ITEMS
    capped.nested_left_out = sum(map(_node_outputs, value[MAX_ITEMS:]))
    return capped


def _capped_list(source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
    # A list of at most MAX_ITEMS items that all validate (nearly every list) is validated
    # without calling Python; anything else goes to _cap, whose items that fail are omitted.
    schema = handler(source)
    if schema["type"] != "list":
        raise TypeError(f"Capped annotates a list, not {source!r}")
    items = schema.get("items_schema", cs.any_schema())
    fast = cs.list_schema(items, max_length=MAX_ITEMS, strict=True)
    skipping = cs.list_schema(cs.with_default_schema(items, on_error="omit"))
    slow = cs.no_info_wrap_validator_function(_cap, skipping)
    return cs.union_schema([fast, slow], mode="left_to_right")


def _or_none(source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
    return cs.with_default_schema(handler(source), default=None, on_error="default")


Lenient = GetPydanticSchema(_or_none)
"""Annotation: a value with an unexpected shape reads as None instead of refusing the model
(what ``WrapValidator(lenient)`` does, without calling Python)."""
Capped = GetPydanticSchema(_capped_list)
"""Annotation of a list: its first ``MAX_ITEMS`` items that validate (a ``CappedList`` when
some were not taken); not a list reads as []."""


class OpenModel(BaseModel):
    """Frozen, and extra fields are kept (Mosaic may add fields at any time)."""

    model_config = ConfigDict(extra="allow", frozen=True)


def _count(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Not a whole number at all reads as 0; a number out of range (negative, too large) is
    given back as is, for the check after it to refuse."""
    try:
        return handler(value)
    except ValidationError as exc:
        if any(error["type"] in _OUT_OF_RANGE for error in exc.errors()):
            return value
        return 0


def _count_schema(source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
    """A count: an int goes straight to the range check; any other value through ``_count``."""
    checked = cs.int_schema(ge=0, le=MAX_NODE_COUNT)
    read = cs.union_schema(
        [cs.int_schema(strict=True), cs.no_info_wrap_validator_function(_count, checked)],
        mode="left_to_right",
    )
    return cs.chain_schema([read, checked])


def _counts_schema(source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
    """An object is checked (its count errors reject the event); any other shape is dropped."""
    objects_only = cs.with_default_schema(
        cs.dict_schema(strict=True), default=None, on_error="default"
    )
    return cs.chain_schema([objects_only, handler(source)])


OptStr = Annotated[str | None, Lenient]
OptInt = Annotated[int | None, Lenient]
Count = Annotated[int, GetPydanticSchema(_count_schema)]


class NodeCounts(OpenModel):
    completed: Count = 0
    in_progress: Count = 0
    failed: Count = 0

    @property
    def total(self) -> int:
        return self.completed + self.in_progress + self.failed


class Output(OpenModel):
    id: OptStr = None
    video_url: OptStr = None
    thumbnail_url: OptStr = None
    completed_at: OptStr = None
    original_node_id: OptStr = None


class Input(OpenModel):
    video_url: OptStr = None
    thumbnail_url: OptStr = None


class UpdatedNode(OpenModel):
    original_node_id: OptStr = None
    status: OptStr = None
    status_message: OptStr = None
    outputs: Annotated[list[Output], Capped] = []


class Trigger(OpenModel):
    type: OptStr = None
    channel_id: OptStr = None
    video_id: OptStr = None
    video_title: OptStr = None
    video_url: OptStr = None
    triggered_at: OptStr = None
    trigger_id: OptStr = None


class Event(OpenModel):
    """One webhook. Required: ``flag``, ``agent_id``, ``run_id``, ``status`` (strings)."""

    flag: StrictStr
    agent_id: StrictStr
    run_id: StrictStr
    status: StrictStr
    node_status_counts: Annotated[NodeCounts | None, GetPydanticSchema(_counts_schema)] = None
    triggered_by: Annotated[Trigger | None, Lenient] = None
    status_message: OptStr = None
    inputs: Annotated[list[Input], Capped] = []
    outputs: Annotated[list[Output], Capped] = []
    updated_nodes: Annotated[list[UpdatedNode], Capped] = []
    needs_credits: Annotated[bool | None, Lenient] = None
    errors: Annotated[list[Any], Capped] = []

    def left_out(self, name: str) -> int:
        """How many items of list ``name`` (or ``node_outputs``: of all updated nodes' outputs)
        the typed view did not take."""
        if name == "node_outputs":
            nodes = self.updated_nodes
            return _nested_left_out(nodes) + sum(_left_out(node.outputs) for node in nodes)
        return _left_out(getattr(self, name)) if name in _CAPPED else 0

    @property
    def trigger_type(self) -> str:
        """``youtube``, ``schedule``, ``manual``, another type Mosaic adds, or ``none``."""
        if self.triggered_by is None or not self.triggered_by.type:
            return "none"
        return self.triggered_by.type

    @property
    def counts(self) -> NodeCounts:
        return self.node_status_counts or NodeCounts()

    @property
    def relay_note(self) -> dict[str, Any]:
        """The ``_relay`` object of an event the relay built (``source``, ``silent_for``…)."""
        note = (self.model_extra or {}).get(RELAY_KEY)
        return note if isinstance(note, dict) else {}

    @property
    def source(self) -> str:
        """``webhook``, ``reconciled`` or ``watch`` (see ``EVENT_SOURCES``)."""
        source = self.relay_note.get("source")
        return source if source in EVENT_SOURCES[1:] else "webhook"

    @property
    def is_terminal(self) -> bool:
        return self.flag == "RUN_FINISHED" or self.status in TERMINAL_STATUSES
