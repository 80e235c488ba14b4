"""The variables every template sees.

Every string taken from the event is cleaned first (invalid Unicode replaced, control and bidi
override characters removed, line ends normalised) but is otherwise the sender's text: the
environment escapes it for the output markup. Lists are lists of dicts and hold the first 20
items at most, in ``event`` too (``<list>_more`` counts the rest; the stored event keeps them all);
absent values are ``None`` (``{{ x }}`` renders ``None`` as empty); an unknown variable is an
error.

| variable | value |
|---|---|
| `event` | the payload as a dict, unknown/extra fields included (lists: first 20 items) |
| `flag` | `RUN_STARTED`, `RUN_PROGRESS`, `RUN_FINISHED`, `RUN_STALE`, `TEST` or a newer flag |
| `status` | `running`, `completed`, `partial_complete`, `failed`, `cancelled`… |
| `status_word` | `Started`, `Running`, `No news`, `Finished`, `Partially complete`, `Failed`, `Cancelled`… |
| `emoji` | 🚀 ⏳ ⏰ ✅ ⚠️ ❌ 🛑 🧪 (else ℹ️) |
| `color` | hex colour of the status, e.g. `#E01E5A` for failed |
| `title` | one line, e.g. `❌ Failed: Shorts cutter run c2d9e8f7` |
| `agent_id` | the agent's id |
| `agent_name` | its display name from `agents:` in relay.yaml, else its name in Mosaic (`mosaic.agent_names`, once resolved), else `agent` and the first 8 characters of its id (a short id as it is) |
| `run_id`, `run_short` | the run's id; its first 8 characters |
| `run_url` | a link to the run (`mosaic.run_url` with the ids filled in, URL-quoted); `None` without it |
| `source` | `webhook`, `reconciled` (found through Mosaic's API: the webhook never arrived) or `watch` (the relay's own `RUN_STALE`) |
| `source_note` | `Recovered from Mosaic's API (the webhook never arrived)` for a reconciled event, else `None` |
| `silent_for` | `RUN_STALE`: seconds since the relay last heard of the run (`| duration`), else `None` |
| `stale_note` | `RUN_STALE`: e.g. `No news from this run for 2h 00m — still running at 7/10 nodes`, else `None` |
| `trigger` | dict of what started the run; the keys below are always there, extra fields kept |
| `trigger.type` | `youtube`, `schedule`, `manual`… or `none` (a plain API run) |
| `trigger.*` | `video_title`, `video_url`, `video_id`, `channel_id`, `triggered_at`, `trigger_id` |
| `trigger_label` | `YouTube`, `Schedule`, `Manual`, `API`… |
| `inputs` | list of `{video_url, thumbnail_url, …}` |
| `outputs` | list of `{id, video_url, thumbnail_url, completed_at, original_node_id, …}` |
| `node_outputs` | the outputs listed in `updated_nodes` (`RUN_PROGRESS`), flattened |
| `image_url` | first http(s) thumbnail of outputs, node outputs, then inputs; else `None` |
| `progress` | `completed`, `in_progress`, `failed` (0-1,000,000), `total`, `percent` (0-100) |
| `progress.bar` | e.g. `▰▰▰▰▱▱▱` (12 cells at most); `progress.summary`: `6/8 nodes done…` |
| `updated_nodes` | list of `{original_node_id, status, status_message, outputs}` |
| `status_message` | the run's message (`None` unless Mosaic sent one) |
| `reason_label` | `Why it failed`, `What went wrong`, `Reason` or `Note` |
| `errors`, `error_messages` | the `errors` list as sent; each error as one line of text |
| `*_more` | e.g. `updated_nodes_more`: how many items that list leaves out (beyond the first 20) |
| `needs_credits` | `True` when the run stopped for lack of credits, else `False`/`None` |
| `elapsed` | seconds since the relay accepted the run's `RUN_STARTED`; `None` when it never saw it |
| `is_terminal` | `True` for a finished, failed or cancelled run |
| `route`, `channel`, `event_id` | the route's and channel's names; the relay's id of the event |

Webhook body templates also get ``text`` and ``subject``: the message rendered for the channel.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from relay.events import MAX_ITEMS, MAX_NODE_COUNT, Event
from relay.render.environment import duration
from relay.render.limits import clean_text, oneline, safe_url

__all__ = [
    "RECOVERED_NOTE",
    "ContextCache",
    "build_context",
    "delivery_context",
    "display_name",
    "event_context",
    "run_link",
    "status_style",
]

_STYLES: dict[str, tuple[str, str, str]] = {
    "completed": ("Finished", "✅", "#2EB67D"),
    "failed": ("Failed", "❌", "#E01E5A"),
    "partial_complete": ("Partially complete", "⚠️", "#ECB22E"),
    "cancelled": ("Cancelled", "🛑", "#868686"),
}
_TEST = ("Test", "🧪", "#8B5CF6")
_STARTED = ("Started", "🚀", "#1D9BD1")
_RUNNING = ("Running", "⏳", "#1D9BD1")
_STALE = ("No news", "⏰", "#E8912D")
RECOVERED_NOTE = "Recovered from Mosaic's API (the webhook never arrived)"
_REASONS = {
    "failed": "Why it failed",
    "partial_complete": "What went wrong",
    "cancelled": "Reason",
}
_TRIGGER_LABELS = {"youtube": "YouTube", "schedule": "Schedule", "manual": "Manual", "none": "API"}
_TRIGGER_KEYS = ("channel_id", "video_id", "video_title", "video_url", "triggered_at", "trigger_id")
_BAR_CELLS = 12
_MAX_DEPTH = 32
_SCALARS: frozenset[type] = frozenset({int, float, bool, type(None)})
_NO_SCALARS: frozenset[type] = frozenset()


def _short_agent(agent_id: str) -> str:
    """An unnamed agent in messages: ``agent 123e4567`` for a UUID, a short id as it is."""
    agent_id = oneline(agent_id)
    return agent_id if len(agent_id) <= 12 else f"agent {agent_id[:8]}"


def status_style(flag: str, status: str) -> tuple[str, str, str]:
    """``(status_word, emoji, color)`` for an event."""
    if flag == "TEST":
        return _TEST
    if flag == "RUN_STALE":
        return _STALE
    if status in _STYLES:
        return _STYLES[status]
    if flag == "RUN_STARTED":
        return _STARTED
    if flag == "RUN_PROGRESS" or status == "running":
        return _RUNNING
    word = oneline(status.replace("_", " ")).capitalize() or oneline(flag).capitalize()
    return (word or "Update", "ℹ️", "#868686")


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if depth > _MAX_DEPTH:
        return None
    inner = depth + 1
    scalars = _SCALARS if inner <= _MAX_DEPTH else _NO_SCALARS  # past the depth they are None
    # Items that come back as they are (printable ASCII text, numbers, None) spare the call.
    if isinstance(value, dict):
        return {
            k if type(k) is str and k.isascii() and k.isprintable() else clean_text(str(k)): (
                v
                if (t := type(v)) in scalars or (t is str and v.isascii() and v.isprintable())
                else _clean(v, inner)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            v
            if (t := type(v)) in scalars or (t is str and v.isascii() and v.isprintable())
            else _clean(v, inner)
            for v in value[:MAX_ITEMS]
        ]
    return value


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        for key in ("message", "error", "detail", "msg"):
            if isinstance(error.get(key), str):
                return oneline(error[key])
        return oneline(json.dumps(error, ensure_ascii=False, sort_keys=True))
    return oneline(error)


def _count(value: Any) -> int:
    """A node count fit for arithmetic: a whole number clamped to 0..``MAX_NODE_COUNT``."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return min(max(value, 0), MAX_NODE_COUNT)


def _progress(counts: Mapping[str, Any], status: str, terminal: bool) -> dict[str, Any]:
    completed, in_progress, failed = (
        _count(counts.get(key)) for key in ("completed", "in_progress", "failed")
    )
    total = completed + in_progress + failed
    if total:
        percent = completed * 100 // total
        cells = min(total, _BAR_CELLS)
        filled = completed * cells // total
    else:
        percent = 100 if status == "completed" else 0
        cells, filled = _BAR_CELLS, _BAR_CELLS * percent // 100
    summary = f"{completed}/{total} nodes done"
    if not terminal and total:
        summary += f" ({percent}%)"
    if failed:
        summary += f", {failed} failed"
    return {
        "completed": completed,
        "in_progress": in_progress,
        "failed": failed,
        "total": total,
        "percent": percent,
        "bar": "▰" * filled + "▱" * (cells - filled),
        "summary": summary,
    }


def _first_thumbnail(*groups: list[dict[str, Any]]) -> str | None:
    for group in groups:
        for item in group:
            url = safe_url(item.get("thumbnail_url"))
            if url:
                return url
    return None


def _lists(event: Event, payload: Mapping[str, Any]) -> dict[str, Any]:
    """``inputs``, ``outputs``, ``updated_nodes``, ``errors``, ``node_outputs`` (each at most
    ``MAX_ITEMS``) and their ``<name>_more`` counts of the items left out."""
    lists: dict[str, Any] = {}
    for key in ("inputs", "outputs", "updated_nodes", "errors"):
        lists[key] = payload.get(key) or []
        lists[f"{key}_more"] = event.left_out(key)
    flat = [out for node in lists["updated_nodes"] for out in node.get("outputs") or []]
    lists["node_outputs"] = flat[:MAX_ITEMS]
    lists["node_outputs_more"] = len(flat) - MAX_ITEMS if len(flat) > MAX_ITEMS else 0
    lists["node_outputs_more"] += event.left_out("node_outputs")
    return lists


def run_link(run_url: str | None, event: Event) -> str | None:
    """``run_url`` (``mosaic.run_url``) with the event's ``{run_id}`` and ``{agent_id}`` filled
    in, each URL-quoted whole; None without a template, or when the result is no http(s) URL."""
    if run_url is None:
        return None
    ids = {"run_id": event.run_id, "agent_id": event.agent_id}
    return safe_url(run_url.format(**{name: quote(value, safe="") for name, value in ids.items()}))


def _silent_for(event: Event) -> float | None:
    value = event.relay_note.get("silent_for")
    if event.flag != "RUN_STALE" or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(0.0, float(value))


def _stale_note(silent_for: float | None, progress: Mapping[str, Any]) -> str:
    note = "No news from this run"
    if silent_for is not None:
        note += f" for {duration(silent_for)}"
    note += " — still running"
    if progress["total"]:
        note += f" at {progress['completed']}/{progress['total']} nodes"
    return note


def _source_variables(event: Event, progress: Mapping[str, Any]) -> dict[str, Any]:
    """``source``, ``source_note``, ``silent_for`` and ``stale_note``."""
    silent_for = _silent_for(event)
    stale = event.flag == "RUN_STALE"
    return {
        "source": event.source,
        "source_note": RECOVERED_NOTE if event.source == "reconciled" else None,
        "silent_for": silent_for,
        "stale_note": _stale_note(silent_for, progress) if stale else None,
    }


def display_name(
    agent_id: str, agents: Mapping[str, str], api_names: Mapping[str, str] | None
) -> str | None:
    """The agent's name in ``agents:`` (relay.yaml), else in Mosaic (``api_names``), else None."""
    return agents.get(agent_id) or (api_names.get(agent_id) if api_names is not None else None)


def event_context(
    event: Event,
    *,
    agents: Mapping[str, str],
    run_url: str | None = None,
    api_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The variables that depend only on the event (and the agents' names, the run link
    template): built once per event.

    Every list in it holds ``MAX_ITEMS`` items at most (the typed view takes no more), so its
    cost does not grow with the length of the event's lists.
    """
    payload: dict[str, Any] = _clean(event.model_dump(mode="json"))
    flag, status = payload["flag"], payload["status"]
    agent_id, run_id = payload["agent_id"], payload["run_id"]
    word, emoji, color = status_style(flag, status)
    named = display_name(event.agent_id, agents, api_names)
    agent_name = clean_text(named or "") or _short_agent(agent_id)

    raw_trigger: dict[str, Any] = payload.get("triggered_by") or {}
    trigger: dict[str, Any] = {**raw_trigger, "type": raw_trigger.get("type") or "none"}
    trigger.update({key: raw_trigger.get(key) for key in _TRIGGER_KEYS})
    trigger_label = _TRIGGER_LABELS.get(trigger["type"]) or oneline(trigger["type"]).capitalize()

    lists = _lists(event, payload)
    run_short = oneline(run_id)[:8]
    title = f"{emoji} {word}: {oneline(agent_name)}"
    if flag != "TEST":
        title += f" run {run_short}"
    progress = _progress(payload.get("node_status_counts") or {}, status, event.is_terminal)

    return {
        "event": payload,
        "flag": flag,
        "status": status,
        "status_word": word,
        "emoji": emoji,
        "color": color,
        "title": title,
        "agent_id": agent_id,
        "agent_name": agent_name,
        "run_id": run_id,
        "run_short": run_short,
        "run_url": run_link(run_url, event) if flag != "TEST" else None,
        **_source_variables(event, progress),
        "trigger": trigger,
        "trigger_label": trigger_label,
        **lists,
        "image_url": _first_thumbnail(lists["outputs"], lists["node_outputs"], lists["inputs"]),
        "progress": progress,
        "status_message": payload.get("status_message"),
        "reason_label": _REASONS.get(status, "Note"),
        "error_messages": [m for m in map(_error_message, lists["errors"]) if m],
        "needs_credits": payload.get("needs_credits"),
        "is_terminal": event.is_terminal,
    }


def delivery_context(
    base: Mapping[str, Any],
    *,
    event_id: str,
    route: str,
    channel: str,
    run_started_at: float | None,
    now: float,
) -> dict[str, Any]:
    """``base`` (from ``event_context``) with the variables of one delivery; ``base`` is shared."""
    elapsed = None if run_started_at is None else max(0.0, now - run_started_at)
    return {**base, "elapsed": elapsed, "route": route, "channel": channel, "event_id": event_id}


def build_context(
    event: Event,
    *,
    agents: Mapping[str, str],
    run_url: str | None = None,
    event_id: str,
    route: str,
    channel: str,
    run_started_at: float | None,
    now: float,
) -> dict[str, Any]:
    """The template variables for one delivery (see the module docstring)."""
    return delivery_context(
        event_context(event, agents=agents, run_url=run_url),
        event_id=event_id,
        route=route,
        channel=channel,
        run_started_at=run_started_at,
        now=now,
    )


class ContextCache:
    """``event_context`` of the last few events, so the deliveries of one event share one.

    Keyed by the ``Event`` object (the dispatcher parses a stored event once for all its jobs); an
    entry keeps its event alive, so no other event can take its ``id`` while it is cached. Safe to
    use from several threads.
    """

    def __init__(
        self,
        agents: Mapping[str, str],
        size: int = 4,
        *,
        run_url: str | None = None,
        api_names: Mapping[str, str] | None = None,
    ) -> None:
        self._agents = agents
        self._run_url = run_url
        self._api_names = api_names
        self._size = size
        self._entries: OrderedDict[int, tuple[Event, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, event: Event) -> dict[str, Any]:
        key = id(event)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry[1]
        base = event_context(
            event, agents=self._agents, run_url=self._run_url, api_names=self._api_names
        )
        with self._lock:
            self._entries[key] = (event, base)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return base
