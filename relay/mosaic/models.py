"""Typed views of Mosaic REST API answers.

Lenient like ``relay.events``: extra fields are kept, an optional field with an unexpected shape
reads as None (or an empty list), lists keep their first ``MAX_ITEMS`` items. Only the ids and the
status are required; times are timezone-aware datetimes (a time without a zone is taken as UTC).
Node counts that ``relay.events`` would reject (negative, huge) read as None here: an API answer is
not refused for one odd run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    StrictStr,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from relay.events import (
    TERMINAL_STATUSES,
    Input,
    NodeCounts,
    OpenModel,
    OptStr,
    Output,
    Trigger,
    lenient,
    lenient_list,
)

__all__ = ["Agent", "Run", "RunPage", "RunSummary", "WhoAmI"]


def _lenient_time(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    parsed = lenient(value, handler)
    if isinstance(parsed, datetime) and parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed


OptBool = Annotated[bool | None, WrapValidator(lenient)]
OptTime = Annotated[datetime | None, WrapValidator(_lenient_time)]


class WhoAmI(OpenModel):
    """``GET /whoami``; older API versions answer ``user_id``/``email`` instead (kept as extras)."""

    organization_id: OptStr = None
    organization_name: OptStr = None
    organization_slug: OptStr = None
    created_at: OptTime = None
    last_used_at: OptTime = None


class Agent(OpenModel):
    """``agent`` of ``GET /agent/{id}``; ``name`` is what operators see in Mosaic's editor."""

    id: StrictStr
    name: OptStr = None
    description: OptStr = None
    visibility: OptStr = None
    created_at: OptTime = None
    updated_at: OptTime = None


class RunSummary(OpenModel):
    """One item of ``GET /agent_runs`` (no ``needs_credits``: ask ``GET /agent_run/{id}``)."""

    run_id: StrictStr
    agent_id: StrictStr
    status: StrictStr
    status_message: OptStr = None
    started_at: OptTime = None
    updated_at: OptTime = None
    node_status_counts: Annotated[NodeCounts | None, WrapValidator(lenient)] = None
    inputs: Annotated[list[Input], WrapValidator(lenient_list)] = []
    outputs: Annotated[list[Output], WrapValidator(lenient_list)] = []
    triggered_by: Annotated[Trigger | None, WrapValidator(lenient)] = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def counts(self) -> NodeCounts:
        return self.node_status_counts or NodeCounts()


class Run(RunSummary):
    """``GET /agent_run/{id}``. Its answer carries no ``run_id`` (the client fills in the one
    asked for) and, as documented, no ``updated_at`` or ``triggered_by`` (None unless sent)."""

    needs_credits: OptBool = None
    errors: Annotated[list[Any], WrapValidator(lenient_list)] = []


@dataclass(frozen=True)
class RunPage:
    """One page of a run listing; ``skipped`` counts items without a run_id, agent_id or status."""

    runs: list[RunSummary]
    next_cursor: str | None
    skipped: int = 0
