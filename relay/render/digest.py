"""The variables a digest's templates see (a window of held events as one message).

| variable | value |
|---|---|
| `digest` | `digest` (a digest route's window) or `quiet` (held during a channel's quiet hours) |
| `title` | one line, e.g. `📋 daily-youtube: 12 runs` |
| `window` | the window in its time zone, e.g. `Mon 30 Nov 08:00 – 09:00 CET` |
| `window_start`, `window_end` | seconds since the epoch (`window_start` may be `None`) |
| `late`, `late_note` | sent well after the window ended (the relay was down); the sentence saying so |
| `empty` | `True` when the window held nothing (`send_empty`) |
| `total_runs`, `total_events` | how many runs, and events, the window held |
| `counts` | list of `{status, status_word, emoji, count}`, most runs first |
| `runs` | newest first, the first `max_runs` (or fewer, to fit the destination): `{run_id, run_short, agent_id, agent_name, status, status_word, emoji, color, flag, video_title, video_url, outputs, outputs_count, run_url, at, received_at, events}` |
| `more` | how many runs `runs` leaves out ("… and 37 more") |
| `route`, `channel`, `event_id` | as for an event |

One run is one line: its newest event gives its status (a quiet night's STARTED, PROGRESS and
FINISHED of one run are one line, its end). Every value from an event is the sender's text,
escaped by the output markup like any other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from relay.digest.entries import Digest, Entry
from relay.digest.settings import zone
from relay.render.context import display_name, status_style
from relay.render.limits import clean_text, oneline, safe_url

__all__ = ["digest_context"]

_SEVERITY = ("failed", "partial_complete", "cancelled")
"""Statuses that colour a digest, worst first."""
_OK_COLOR = "#2EB67D"


def digest_context(
    digest: Digest,
    *,
    agents: Mapping[str, str],
    api_names: Mapping[str, str] | None,
    run_url: str | None,
    listed: int,
    event_id: str,
    channel: str,
) -> dict[str, Any]:
    """The template variables of ``digest``, listing its ``listed`` newest runs."""
    runs = _runs(digest.entries)
    tz = zone(digest.timezone)
    statuses = Counter(entry.status for entry, _ in runs)
    counts = []
    for status, count in statuses.most_common():
        word, emoji, _ = status_style(_flag_of(runs, status), status)
        counts.append({"status": status, "status_word": word, "emoji": emoji, "count": count})
    shown = [
        _run(entry, agents=agents, api_names=api_names, run_url=run_url, tz=tz, events=events)
        for entry, events in runs[:listed]
    ]
    what = "Quiet hours" if digest.kind == "quiet" else oneline(digest.route)
    noun = "run" if len(runs) == 1 else "runs"
    icon = "🌙" if digest.kind == "quiet" else "📋"
    title = f"{icon} {what}: {len(runs):,} {noun}" + (" held" if digest.kind == "quiet" else "")
    worst = next((status for status in _SEVERITY if statuses.get(status)), None)
    return {
        "digest": digest.kind,
        "title": title,
        "window": _window(digest.start, digest.end, tz),
        "window_start": digest.start,
        "window_end": digest.end,
        "late": digest.late,
        "late_note": "Sent late: the relay was not running when this window ended."
        if digest.late
        else None,
        "empty": not runs,
        "total_runs": len(runs),
        "total_events": len(digest.entries),
        "counts": counts,
        "runs": shown,
        "more": len(runs) - len(shown),
        "route": digest.route,
        "channel": channel,
        "event_id": event_id,
        "color": status_style("RUN_FINISHED", worst)[2] if worst else _OK_COLOR,
        "status_word": "Digest",
        "image_url": None,
    }


def _runs(entries: list[Entry]) -> list[tuple[Entry, int]]:
    """Each run's newest entry (newest run first), with how many events it had."""
    newest: dict[str, Entry] = {}
    events: Counter[str] = Counter()
    for entry in entries:
        events[entry.run_id] += 1
        current = newest.get(entry.run_id)
        if current is None or entry.received_at >= current.received_at:
            newest[entry.run_id] = entry
    ordered = sorted(newest.values(), key=lambda entry: entry.received_at, reverse=True)
    return [(entry, events[entry.run_id]) for entry in ordered]


def _flag_of(runs: list[tuple[Entry, int]], status: str) -> str:
    return next((entry.flag for entry, _ in runs if entry.status == status), "RUN_FINISHED")


def _run(
    entry: Entry,
    *,
    agents: Mapping[str, str],
    api_names: Mapping[str, str] | None,
    run_url: str | None,
    tz: Any,
    events: int,
) -> dict[str, Any]:
    word, emoji, color = status_style(entry.flag, entry.status)
    name = display_name(entry.agent_id, agents, api_names)
    link = None
    if run_url is not None:
        ids = {"run_id": entry.run_id, "agent_id": entry.agent_id}
        link = safe_url(run_url.format(**{k: quote(v, safe="") for k, v in ids.items()}))
    outputs = [url for url in (safe_url(u) for u in entry.outputs) if url is not None]
    short = oneline(entry.agent_id)
    return {
        "run_id": clean_text(entry.run_id),
        "run_short": oneline(entry.run_id)[:8],
        "agent_id": clean_text(entry.agent_id),
        "agent_name": clean_text(name)
        if name
        else (short if len(short) <= 12 else f"agent {short[:8]}"),
        "status": entry.status,
        "status_word": word,
        "emoji": emoji,
        "color": color,
        "flag": entry.flag,
        "video_title": clean_text(entry.video_title) if entry.video_title else None,
        "video_url": safe_url(entry.video_url),
        "outputs": outputs,
        "outputs_count": entry.outputs_count,
        "run_url": link,
        "at": datetime.fromtimestamp(entry.received_at, tz).strftime("%H:%M"),
        "received_at": entry.received_at,
        "events": events,
    }


def _window(start: float | None, end: float, tz: Any) -> str:
    last = datetime.fromtimestamp(end, tz)
    if start is None:
        return f"until {last:%a %d %b %H:%M %Z}"
    first = datetime.fromtimestamp(start, tz)
    if first.date() == last.date():
        return f"{first:%a %d %b %H:%M} – {last:%H:%M %Z}"
    return f"{first:%a %d %b %H:%M} – {last:%a %d %b %H:%M %Z}"
