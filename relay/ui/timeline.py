"""A run's timeline as plain data: its events, node progress (and the step chart's geometry),
outputs and live cards with their message links. Event text stays text: the template escapes it,
and only http(s) URLs are kept for links and thumbnails."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relay.events import RELAY_KEY
from relay.render.environment import duration
from relay.render.limits import safe_url
from relay.store.base import EventRecord, LiveCard

__all__ = [
    "CHART",
    "Chart",
    "card_json",
    "event_entry",
    "message_link",
    "outputs_of",
    "progress_chart",
    "progress_points",
]

MAX_NODES = 50
"""Changed nodes shown per event (the payload keeps them all)."""
MAX_OUTPUTS = 60
SERIES = ("total", "completed", "failed")


def _payload(record: EventRecord) -> dict[str, Any]:
    try:
        payload = json.loads(record.body or b"{}")
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _count(counts: Any, key: str) -> int:
    value = counts.get(key) if isinstance(counts, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _counts(payload: dict[str, Any]) -> dict[str, int] | None:
    counts = payload.get("node_status_counts")
    if not isinstance(counts, dict):
        return None
    found = {key: _count(counts, key) for key in ("completed", "in_progress", "failed")}
    return {**found, "total": sum(found.values())}


def _source(payload: dict[str, Any]) -> str:
    note = payload.get(RELAY_KEY)
    source = note.get("source") if isinstance(note, dict) else None
    return source if source in ("reconciled", "watch") else "webhook"


def event_entry(record: EventRecord, deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    """One line of the timeline: what the event said, and where it went."""
    payload = _payload(record)
    nodes = [n for n in payload.get("updated_nodes") or () if isinstance(n, dict)]
    note = payload.get(RELAY_KEY)
    silent = note.get("silent_for") if isinstance(note, dict) else None
    return {
        "event_id": record.event_id,
        "received_at": record.received_at,
        "flag": record.flag,
        "status": record.status,
        "source": _source(payload),
        "status_message": _text(payload.get("status_message")),
        "counts": _counts(payload),
        "updated_nodes": [
            {"id": _text(n.get("original_node_id")), "status": _text(n.get("status"))}
            for n in nodes[:MAX_NODES]
        ],
        "nodes_left_out": max(0, len(nodes) - MAX_NODES),
        "silent_for": silent if isinstance(silent, int | float) else None,
        "deliveries": deliveries,
    }


def outputs_of(records: Sequence[EventRecord]) -> list[dict[str, Any]]:
    """Every output the run's events named (final and per node), first mention first; URLs
    only when http(s) (the browser loads thumbnails itself, the relay never fetches them)."""
    seen: set[str] = set()
    found: list[dict[str, Any]] = []
    for record in records:
        payload = _payload(record)
        nodes = [n for n in payload.get("updated_nodes") or () if isinstance(n, dict)]
        lists = [payload.get("outputs"), *(node.get("outputs") for node in nodes)]
        for output in (o for items in lists if isinstance(items, list) for o in items):
            if not isinstance(output, dict):
                continue
            video, thumb = safe_url(output.get("video_url")), safe_url(output.get("thumbnail_url"))
            key = _text(output.get("id")) or video or thumb
            if key is None or key in seen or len(found) == MAX_OUTPUTS:
                continue
            seen.add(key)
            found.append(
                {"id": _text(output.get("id")), "video_url": video, "thumbnail_url": thumb,
                 "node": _text(output.get("original_node_id")), "event_id": record.event_id}
            )  # fmt: skip
    return found


def progress_points(entries: Sequence[dict[str, Any]], start: float) -> list[dict[str, Any]]:
    """Node counts per event that carried them, seconds after ``start``."""
    return [
        {"at": e["received_at"], "seconds": max(0.0, e["received_at"] - start), "flag": e["flag"],
         **e["counts"]}
        for e in entries
        if e["counts"] is not None
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: int
    bottom: int
    top: int
    right: int

    def x(self, seconds: float, span: float) -> float:
        return self.left + (self.width - self.left - self.right) * (seconds / span if span else 0)

    def y(self, value: float, most: float) -> float:
        inner = self.height - self.top - self.bottom
        return self.height - self.bottom - inner * (value / most if most else 0)


CHART = Chart(width=720, height=220, left=44, bottom=28, top=12, right=16)


def progress_chart(points: Sequence[dict[str, Any]], chart: Chart = CHART) -> dict[str, Any]:
    """The step chart's lines (SVG ``points`` text per series), axes and tick labels."""
    if not points:
        return {}
    span = max(p["seconds"] for p in points)
    most = max(max(p["total"] for p in points), 1)
    lines = {}
    for series in SERIES:
        coords: list[tuple[float, float]] = []
        for point in points:
            x, y = chart.x(point["seconds"], span), chart.y(point[series], most)
            if coords:
                coords.append((x, coords[-1][1]))  # hold the value until the next event
            coords.append((x, y))
        if len(coords) == 1:
            coords.append(
                (chart.x(span, span) if span else chart.width - chart.right, coords[0][1])
            )
        lines[series] = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    ticks = sorted({0, most // 2, most}) if most > 1 else [0, 1]
    return {
        "chart": chart,
        "lines": lines,
        "dots": [
            {
                "x": round(chart.x(p["seconds"], span), 1),
                "y": round(chart.y(p["completed"], most), 1),
            }
            for p in points
        ],
        "y_ticks": [{"value": t, "y": round(chart.y(t, most), 1)} for t in ticks],
        "span": span,
        "span_label": f"{span:.1f}s" if span < 10 else duration(span),
    }


_SLACK_CHANNEL = re.compile(r"^[A-Z0-9]{2,32}$")
_SLACK_TS = re.compile(r"^(\d{1,12})\.(\d{1,9})$")
_TELEGRAM_SUPERGROUP = re.compile(r"^-100(\d{1,16})$")
_TELEGRAM_MESSAGE = re.compile(r"^(\d{1,12})(?::\w+)?$")


def _slack(channel_id: str, message_id: str) -> str | None:
    ts = _SLACK_TS.match(message_id)
    if not _SLACK_CHANNEL.match(channel_id) or ts is None:
        return None
    return f"https://slack.com/archives/{channel_id}/p{ts.group(1)}{ts.group(2)}"


def _telegram(chat_id: str, message_id: str) -> str | None:
    chat, message = _TELEGRAM_SUPERGROUP.match(chat_id), _TELEGRAM_MESSAGE.match(message_id)
    if chat is None or message is None:  # private chats and basic groups have no public link
        return None
    return f"https://t.me/c/{chat.group(1)}/{message.group(1)}"


LINKS: dict[str, Callable[[str, str], str | None]] = {"slack": _slack, "telegram": _telegram}
"""Channel type -> the message's web address from the stored ref (no API call)."""


def message_link(kind: str | None, channel_id: str | None, message_id: str | None) -> str | None:
    make = LINKS.get(kind or "")
    if make is None or channel_id is None or message_id is None:
        return None
    return make(channel_id, message_id)


def _shows(rank: Any) -> dict[str, Any] | None:
    """What a card's rank says it shows (``relay.cards.card_rank``); None before its first post."""
    if not (isinstance(rank, list) and len(rank) == 3 and all(type(v) is int for v in rank)):
        return None
    if rank[1] < 0:
        return None
    return {"ended": bool(rank[0]), "finished_nodes": rank[1], "completed_nodes": rank[2]}


def card_json(card: LiveCard, kind: str | None) -> dict[str, Any]:
    state: Any = None
    if card.state:
        try:
            state = json.loads(card.state)
        except ValueError:
            state = None
    rank = state.get("rank") if isinstance(state, dict) else None
    last_edit = state.get("last_edit") if isinstance(state, dict) else None
    return {
        "channel": card.channel,
        "type": kind,
        "channel_id": card.channel_id,
        "message_id": card.message_id,
        "link": message_link(kind, card.channel_id, card.message_id),
        "last_edit": last_edit if isinstance(last_edit, int | float) and last_edit else None,
        "shows": _shows(rank),
        "text": card.text,
        "sent_at": card.sent_at,
    }
