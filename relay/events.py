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
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

__all__ = [
    "EVENT_SOURCES",
    "KNOWN_FLAGS",
    "MAX_ITEMS",
    "MAX_NODE_COUNT",
    "RELAY_KEY",
    "TERMINAL_STATUSES",
    "Event",
    "Input",
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
    """The first ``MAX_ITEMS`` items that validate (others are skipped); not a list reads as []."""
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


def _length(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def _node_outputs(node: Any) -> int:
    return _length(node.get("outputs")) if isinstance(node, dict) else 0


def _left_out(data: dict[str, Any]) -> dict[str, int]:
    """Per capped list, and for the outputs of all updated nodes: the items not taken."""
    counts = {key: max(0, _length(data.get(key)) - MAX_ITEMS) for key in _CAPPED}
    nodes = data.get("updated_nodes")
    if isinstance(nodes, list):
        kept = sum(max(0, _node_outputs(node) - MAX_ITEMS) for node in nodes[:MAX_ITEMS])
        counts["node_outputs"] = kept + sum(map(_node_outputs, nodes[MAX_ITEMS:]))
    return {key: count for key, count in counts.items() if count}


class OpenModel(BaseModel):
    """Frozen, and extra fields are kept (Mosaic may add fields at any time)."""

    model_config = ConfigDict(extra="allow", frozen=True)


def _count(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Out of range (negative, too large) is an error; not a whole number at all reads as 0."""
    try:
        return handler(value)
    except ValidationError as exc:
        if any(error["type"] in _OUT_OF_RANGE for error in exc.errors()):
            raise
        return 0


def _counts(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """An object is checked (its count errors reject the event); any other shape is dropped."""
    return handler(value) if isinstance(value, dict) else None


OptStr = Annotated[str | None, WrapValidator(lenient)]
OptInt = Annotated[int | None, WrapValidator(lenient)]
Count = Annotated[int, Field(ge=0, le=MAX_NODE_COUNT), WrapValidator(_count)]


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
    outputs: Annotated[list[Output], WrapValidator(lenient_list)] = []


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
    node_status_counts: Annotated[NodeCounts | None, WrapValidator(_counts)] = None
    triggered_by: Annotated[Trigger | None, WrapValidator(lenient)] = None
    status_message: OptStr = None
    inputs: Annotated[list[Input], WrapValidator(lenient_list)] = []
    outputs: Annotated[list[Output], WrapValidator(lenient_list)] = []
    updated_nodes: Annotated[list[UpdatedNode], WrapValidator(lenient_list)] = []
    needs_credits: Annotated[bool | None, WrapValidator(lenient)] = None
    errors: Annotated[list[Any], WrapValidator(lenient_list)] = []
    _left_out: dict[str, int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _count_left_out(cls, data: Any, handler: ModelWrapValidatorHandler[Event]) -> Event:
        event = handler(data)
        if isinstance(data, dict):
            event._left_out = _left_out(data)
        return event

    def left_out(self, name: str) -> int:
        """How many items of list ``name`` (or ``node_outputs``: of all updated nodes' outputs)
        the typed view did not take."""
        return self._left_out.get(name, 0)

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
