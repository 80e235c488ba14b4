"""Names of held groups (opaque to the store) and of the messages flushed from them."""

from __future__ import annotations

import json
from typing import Literal

__all__ = ["QUIET_ROUTE", "GroupKind", "digest_group", "flush_key", "group_kind", "quiet_group"]

GroupKind = Literal["digest", "quiet"]
QUIET_ROUTE = "quiet-hours"
"""The route name a quiet period's message is delivered under (it gathers many routes)."""


def digest_group(route: str, channel: str) -> str:
    """The events a digest route holds for one channel."""
    return json.dumps(["digest", route, channel], ensure_ascii=False)


def quiet_group(channel: str) -> str:
    """The events held for a channel during its quiet hours."""
    return json.dumps(["quiet", channel], ensure_ascii=False)


def group_kind(group: str) -> GroupKind:
    kind = json.loads(group)[0]
    return "quiet" if kind == "quiet" else "digest"


def flush_key(group: str, end: float) -> str:
    """The one message of ``group`` for the window ending at ``end`` (its dedup key too)."""
    return f"{group}@{end:.3f}"
