"""Stored events as models, validated once per process.

An event this process accepted is handed over already validated (``remember``, called by
``relay.ingest``), so its deliveries skip the parse; any other stored body is parsed once, and the
jobs of one event (one per channel) share that one object, and so one template context in the
renderer's cache. Kept by canonical body bytes, in a small LRU bounded by count and by bytes.

A kept model is exactly what parsing its body gives, down to the order of keys a template could
iterate over (the extra fields Mosaic may add, free-form ``errors``): an accepted event whose
dicts are not in the body's sorted order is not kept, and its deliveries parse the body.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel

from relay.events import Event

__all__ = ["CHECKED_VALUES", "KEPT_BYTES", "KEPT_EVENTS", "forget_all", "parse_stored", "remember"]

KEPT_EVENTS = 256
"""Events kept: enough for the accepted events not yet delivered when the relay keeps up."""
KEPT_BYTES = 4 * 1_048_576
"""Total stored body bytes kept at most (a few large events push out the rest)."""

CHECKED_VALUES = 5_000
"""Values of an accepted event checked at most; an event with more is not kept."""

_SCALARS = frozenset({str, int, float, bool, type(None)})
_kept: OrderedDict[bytes, Event] = OrderedDict()
_kept_bytes = 0
_lock = threading.Lock()  # large bodies are parsed in the dispatcher's worker thread


def remember(body: bytes, event: Event) -> None:
    """Keep ``event``, validated from the payload whose canonical JSON is ``body``, unless its
    key order or types differ from what parsing ``body`` gives (or it is too big to check)."""
    if _as_parsed(event):
        _keep(body, event)


def _as_parsed(value: Any) -> bool:
    """Whether ``value`` holds only JSON types, with every dict's keys (str) in sorted order;
    False past ``CHECKED_VALUES`` values (a huge free-form field: the loop is not held)."""
    stack = [value]
    budget = CHECKED_VALUES
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is list:
            children: Any = item
        elif kind is dict:
            keys = list(item)
            if not all(type(key) is str for key in keys) or keys != sorted(keys):
                return False
            children = item.values()
        elif isinstance(item, BaseModel):
            if item.__pydantic_extra__:
                stack.append(item.__pydantic_extra__)
            children = item.__dict__.values()
        else:
            return False
        budget -= len(children)
        if budget < 0:
            return False
        stack.extend(children)
    return True


def _keep(body: bytes, event: Event) -> None:
    global _kept_bytes
    if len(body) > KEPT_BYTES:
        return
    with _lock:
        if body in _kept:
            _kept.move_to_end(body)
            return
        _kept[body] = event
        _kept_bytes += len(body)
        while len(_kept) > KEPT_EVENTS or _kept_bytes > KEPT_BYTES:
            old, _ = _kept.popitem(last=False)
            _kept_bytes -= len(old)


def parse_stored(body: bytes) -> Event:
    """A stored event's model: the kept one, else parsed (and kept).

    ``json.loads`` first: validating the JSON text in one pydantic call would hold the GIL, and
    so the event loop, for the whole parse (twice as long for a large body).
    """
    with _lock:
        event = _kept.get(body)
        if event is not None:
            _kept.move_to_end(body)
            return event
    event = Event.model_validate(json.loads(body))
    _keep(body, event)
    return event


def forget_all() -> None:
    """Drop every kept event (tests)."""
    global _kept_bytes
    with _lock:
        _kept.clear()
        _kept_bytes = 0
