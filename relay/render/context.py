"""The variables every template sees.

Every string taken from the event is cleaned first (invalid Unicode replaced, control and bidi
override characters removed, line ends normalised) but is otherwise the sender's text: the
environment escapes it for the output markup. Lists are lists of dicts; absent values are
``None`` (``{{ x }}`` renders ``None`` as empty); an unknown variable is an error.

| variable | value |
|---|---|
| `event` | the whole payload as a dict, unknown/extra fields included |
| `flag` | `RUN_STARTED`, `RUN_PROGRESS`, `RUN_FINISHED`, `TEST` or a newer flag |
| `status` | `running`, `completed`, `partial_complete`, `failed`, `cancelled`… |
| `status_word` | `Started`, `Running`, `Finished`, `Partially complete`, `Failed`, `Cancelled`… |
| `emoji` | 🚀 ⏳ ✅ ⚠️ ❌ 🛑 🧪 (else ℹ️) |
| `color` | hex colour of the status, e.g. `#E01E5A` for failed |
| `title` | one line, e.g. `❌ Failed: Shorts cutter run c2d9e8f7` |
| `agent_id` | the agent's id |
| `agent_name` | its display name from `agents:` in relay.yaml, else the id |
| `run_id`, `run_short` | the run's id; its first 8 characters |
| `trigger` | dict of what started the run; the keys below are always there, extra fields kept |
| `trigger.type` | `youtube`, `schedule`, `manual`… or `none` (a plain API run) |
| `trigger.*` | `video_title`, `video_url`, `video_id`, `channel_id`, `triggered_at`, `trigger_id` |
| `trigger_label` | `YouTube`, `Schedule`, `Manual`, `API`… |
| `inputs` | list of `{video_url, thumbnail_url, …}` |
| `outputs` | list of `{id, video_url, thumbnail_url, completed_at, original_node_id, …}` |
| `node_outputs` | the outputs listed in `updated_nodes` (`RUN_PROGRESS`), flattened |
| `image_url` | first http(s) thumbnail of outputs, node outputs, then inputs; else `None` |
| `progress` | `completed`, `in_progress`, `failed`, `total` (their sum), `percent` (0-100) |
| `progress.bar` | e.g. `▰▰▰▰▱▱▱`; `progress.summary`: e.g. `6/8 nodes done, 2 failed` |
| `updated_nodes` | list of `{original_node_id, status, status_message, outputs}` |
| `status_message` | the run's message (`None` unless Mosaic sent one) |
| `reason_label` | `Why it failed`, `What went wrong`, `Reason` or `Note` |
| `errors`, `error_messages` | the `errors` list as sent; each error as one line of text |
| `needs_credits` | `True` when the run stopped for lack of credits, else `False`/`None` |
| `elapsed` | seconds since the relay accepted the run's first event, or `None` |
| `is_terminal` | `True` for a finished, failed or cancelled run |
| `route`, `channel`, `event_id` | the route's and channel's names; the relay's id of the event |

Webhook body templates also get ``text`` and ``subject``: the message rendered for the channel.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from relay.events import Event
from relay.render.limits import clean_text, oneline, safe_url

__all__ = ["build_context", "status_style"]

_STYLES: dict[str, tuple[str, str, str]] = {
    "completed": ("Finished", "✅", "#2EB67D"),
    "failed": ("Failed", "❌", "#E01E5A"),
    "partial_complete": ("Partially complete", "⚠️", "#ECB22E"),
    "cancelled": ("Cancelled", "🛑", "#868686"),
}
_TEST = ("Test", "🧪", "#8B5CF6")
_STARTED = ("Started", "🚀", "#1D9BD1")
_RUNNING = ("Running", "⏳", "#1D9BD1")
_REASONS = {
    "failed": "Why it failed",
    "partial_complete": "What went wrong",
    "cancelled": "Reason",
}
_TRIGGER_LABELS = {"youtube": "YouTube", "schedule": "Schedule", "manual": "Manual", "none": "API"}
_TRIGGER_KEYS = ("channel_id", "video_id", "video_title", "video_url", "triggered_at", "trigger_id")
_BAR_CELLS = 12
_MAX_DEPTH = 32


def status_style(flag: str, status: str) -> tuple[str, str, str]:
    """``(status_word, emoji, color)`` for an event."""
    if flag == "TEST":
        return _TEST
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
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(item, depth + 1) for item in value]
    return value


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        for key in ("message", "error", "detail", "msg"):
            if isinstance(error.get(key), str):
                return oneline(error[key])
        return oneline(json.dumps(error, ensure_ascii=False, sort_keys=True))
    return oneline(error)


def _progress(counts: Mapping[str, Any], status: str, terminal: bool) -> dict[str, Any]:
    completed, in_progress, failed = (
        int(counts.get(key) or 0) for key in ("completed", "in_progress", "failed")
    )
    total = completed + in_progress + failed
    if total:
        percent = completed * 100 // total
        cells = total if total <= _BAR_CELLS else _BAR_CELLS
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


def build_context(
    event: Event,
    *,
    agents: Mapping[str, str],
    event_id: str,
    route: str,
    channel: str,
    run_started_at: float | None,
    now: float,
) -> dict[str, Any]:
    """The template variables for one delivery (see the module docstring)."""
    payload: dict[str, Any] = _clean(event.model_dump(mode="json"))
    flag, status = payload["flag"], payload["status"]
    agent_id, run_id = payload["agent_id"], payload["run_id"]
    word, emoji, color = status_style(flag, status)
    agent_name = clean_text(agents.get(event.agent_id) or "") or agent_id

    raw_trigger: dict[str, Any] = payload.get("triggered_by") or {}
    trigger: dict[str, Any] = {**raw_trigger, "type": raw_trigger.get("type") or "none"}
    trigger.update({key: raw_trigger.get(key) for key in _TRIGGER_KEYS})
    trigger_label = _TRIGGER_LABELS.get(trigger["type"]) or oneline(trigger["type"]).capitalize()

    inputs: list[dict[str, Any]] = payload.get("inputs") or []
    outputs: list[dict[str, Any]] = payload.get("outputs") or []
    updated_nodes: list[dict[str, Any]] = payload.get("updated_nodes") or []
    node_outputs = [out for node in updated_nodes for out in node.get("outputs") or []]
    errors: list[Any] = payload.get("errors") or []
    run_short = oneline(run_id)[:8]
    elapsed = None if run_started_at is None else max(0.0, now - run_started_at)
    title = f"{emoji} {word}: {oneline(agent_name)}"
    if flag != "TEST":
        title += f" run {run_short}"

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
        "trigger": trigger,
        "trigger_label": trigger_label,
        "inputs": inputs,
        "outputs": outputs,
        "node_outputs": node_outputs,
        "image_url": _first_thumbnail(outputs, node_outputs, inputs),
        "progress": _progress(payload.get("node_status_counts") or {}, status, event.is_terminal),
        "updated_nodes": updated_nodes,
        "status_message": payload.get("status_message"),
        "reason_label": _REASONS.get(status, "Note"),
        "errors": errors,
        "error_messages": [m for m in map(_error_message, errors) if m],
        "needs_credits": payload.get("needs_credits"),
        "elapsed": elapsed,
        "is_terminal": event.is_terminal,
        "route": route,
        "channel": channel,
        "event_id": event_id,
    }
