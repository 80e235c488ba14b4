"""Pydantic models of Mosaic run webhooks.

Forward compatible: unknown flags and extra fields are accepted and kept. Only ``flag``,
``agent_id``, ``run_id`` and ``status`` are required; any other field with an unexpected shape is
dropped from the typed view (the stored payload keeps it) instead of rejecting the event.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

__all__ = [
    "KNOWN_FLAGS",
    "TERMINAL_STATUSES",
    "Event",
    "Input",
    "NodeCounts",
    "Output",
    "Trigger",
    "UpdatedNode",
]

KNOWN_FLAGS = ("RUN_STARTED", "RUN_PROGRESS", "RUN_FINISHED", "TEST")
TERMINAL_STATUSES = frozenset({"completed", "partial_complete", "failed", "cancelled"})


def _lenient(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


def _lenient_list(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if not isinstance(value, list):
        return []
    items = []
    for item in value:
        try:
            items.append(handler([item])[0])
        except ValidationError:
            continue
    return items


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


OptStr = Annotated[str | None, WrapValidator(_lenient)]
OptInt = Annotated[int | None, WrapValidator(_lenient)]


class NodeCounts(_Open):
    completed: Annotated[int, WrapValidator(lambda v, h: _lenient(v, h) or 0)] = 0
    in_progress: Annotated[int, WrapValidator(lambda v, h: _lenient(v, h) or 0)] = 0
    failed: Annotated[int, WrapValidator(lambda v, h: _lenient(v, h) or 0)] = 0

    @property
    def total(self) -> int:
        return self.completed + self.in_progress + self.failed


class Output(_Open):
    id: OptStr = None
    video_url: OptStr = None
    thumbnail_url: OptStr = None
    completed_at: OptStr = None
    original_node_id: OptStr = None


class Input(_Open):
    video_url: OptStr = None
    thumbnail_url: OptStr = None


class UpdatedNode(_Open):
    original_node_id: OptStr = None
    status: OptStr = None
    status_message: OptStr = None
    outputs: Annotated[list[Output], WrapValidator(_lenient_list)] = []


class Trigger(_Open):
    type: OptStr = None
    channel_id: OptStr = None
    video_id: OptStr = None
    video_title: OptStr = None
    video_url: OptStr = None
    triggered_at: OptStr = None
    trigger_id: OptStr = None


class Event(_Open):
    """One webhook. Required: ``flag``, ``agent_id``, ``run_id``, ``status`` (strings)."""

    flag: StrictStr
    agent_id: StrictStr
    run_id: StrictStr
    status: StrictStr
    node_status_counts: Annotated[NodeCounts | None, WrapValidator(_lenient)] = None
    triggered_by: Annotated[Trigger | None, WrapValidator(_lenient)] = None
    status_message: OptStr = None
    inputs: Annotated[list[Input], WrapValidator(_lenient_list)] = []
    outputs: Annotated[list[Output], WrapValidator(_lenient_list)] = []
    updated_nodes: Annotated[list[UpdatedNode], WrapValidator(_lenient_list)] = []
    needs_credits: Annotated[bool | None, WrapValidator(_lenient)] = None
    errors: Annotated[list[Any], WrapValidator(_lenient_list)] = []

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
    def is_terminal(self) -> bool:
        return self.flag == "RUN_FINISHED" or self.status in TERMINAL_STATUSES
