"""What a held event shows in its digest (an entry), and the stored body of a flushed window.

An entry is written when the event is held, so a digest never needs the event again (events
are pruned after the retention; a weekly window may outlive them). A flushed window is stored as
an event of flag ``DIGEST`` whose body is a ``Digest``.
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict

from relay.events import Event

__all__ = ["DIGEST_FLAG", "MAX_OUTPUT_LINKS", "Digest", "Entry", "entry_of"]

DIGEST_FLAG = "DIGEST"
MAX_OUTPUT_LINKS = 5


class Entry(BaseModel):
    model_config = ConfigDict(frozen=True)

    flag: str
    status: str
    run_id: str
    agent_id: str
    trigger: str
    video_title: str | None = None
    video_url: str | None = None
    outputs: list[str] = []
    """The first ``MAX_OUTPUT_LINKS`` output video URLs (as sent; made safe when rendered)."""
    outputs_count: int = 0
    received_at: float = 0.0


class Digest(BaseModel):
    """A flushed window: what it held, oldest first."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["digest", "quiet"]
    route: str
    channel: str
    start: float | None
    """When the window began (None: unknown, e.g. the first quiet period's start)."""
    end: float
    late: bool = False
    """Sent well after its window ended (the relay was down then)."""
    timezone: str = "UTC"
    entries: list[Entry] = []

    def body(self) -> bytes:
        return orjson.dumps(self.model_dump(), option=orjson.OPT_SORT_KEYS)


def entry_of(event: Event, received_at: float) -> bytes:
    """The entry a held ``event`` shows (JSON)."""
    trigger = event.triggered_by
    outputs = [o.video_url for o in event.outputs if o.video_url]
    entry = Entry(
        flag=event.flag,
        status=event.status,
        run_id=event.run_id,
        agent_id=event.agent_id,
        trigger=event.trigger_type,
        video_title=trigger.video_title if trigger is not None else None,
        video_url=trigger.video_url if trigger is not None else None,
        outputs=outputs[:MAX_OUTPUT_LINKS],
        outputs_count=len(event.outputs) + event.left_out("outputs"),
        received_at=received_at,
    )
    return orjson.dumps(entry.model_dump(exclude_defaults=True), option=orjson.OPT_SORT_KEYS)
