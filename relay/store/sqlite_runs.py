"""Read-only run views of the SQLite store for the web UI (``StoreInspector.list_runs/get_run``).

Nothing is written on the accept path for them. A page walks ``runs`` newest first through
``runs_started`` and computes each run's aggregates from its events (``events_run``) and their
jobs (``jobs_event``), a batch of runs per query. Filters on computed values (agent, final
status, trigger, delivery health) are checked run by run: a search looks at ``SCAN_BOUND`` runs
at most and then hands back a cursor to go on, so no page view walks a million events.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from relay.events import TERMINAL_STATUSES
from relay.store.base import LiveCard, RunDetail, RunFilter, RunPage, RunRecord
from relay.store.sqlite_inspect import (
    _DELIVERY_SQL,
    _EVENT_COLUMNS,
    _event_record,
    _jobs_of,
    _text_at,
)

__all__ = ["MAX_TIMELINE", "SCAN_BOUND", "get_run", "list_runs", "parse_cursor"]

SCAN_BOUND = 2000
"""Runs a filtered search looks at before it answers with a cursor to go on."""
MAX_TIMELINE = 1000
"""Events a run's detail holds (the first ones)."""

_OWN = "e.flag NOT IN ('TEST', 'DIGEST')"
"""Events of a real run: TEST events and the relay's digests are no run's."""
_TERMINAL = ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES))
_ENDS = f"(e.flag = 'RUN_FINISHED' OR e.status IN ({_TERMINAL}))"
_BODY = "CAST(e.body AS TEXT)"
_HAS_TRIGGER = f"json_valid({_BODY}) AND json_type({_BODY}, '$.triggered_by.type') = 'text'"
_OUTPUTS = (
    f"CASE WHEN json_valid({_BODY}) AND json_type({_BODY}, '$.outputs') = 'array' "
    f"THEN json_array_length({_BODY}, '$.outputs') ELSE 0 END"
)
_AGGREGATES_SQL = f"""SELECT e.run_id, count(*), max(e.seq), max(e.received_at),
        min(CASE WHEN {_ENDS} THEN e.received_at END),
        max(CASE WHEN {_ENDS} THEN e.seq END),
        max(CASE WHEN {_HAS_TRIGGER} THEN e.seq END),
        max(CASE WHEN {_OUTPUTS} > 0 THEN e.seq END)
    FROM events e WHERE e.run_id IN ({{}}) AND {_OWN} GROUP BY e.run_id"""
_EVENTS_SQL = f"""SELECT e.seq, e.status, e.agent_id, {_OUTPUTS},
        {_text_at("$.triggered_by.type")}, {_text_at("$.triggered_by.video_title")}
    FROM events e WHERE e.seq IN ({{}})"""
"""Per event: status, agent, outputs count, then the trigger type and title."""
_HEALTHS = ("dead", "retrying", "pending", "sent")
"""The worst first: a run's health is the first its jobs have."""
_HEALTH_SQL = f"""SELECT e.run_id, {", ".join(f"max({_DELIVERY_SQL[s]})" for s in _HEALTHS)}
    FROM events e JOIN jobs j ON j.event_seq = e.seq
    WHERE e.run_id IN ({{}}) AND {_OWN} GROUP BY e.run_id"""


def parse_cursor(text: str) -> tuple[float, str] | None:
    """``RunRecord.cursor`` back to (started_at, run_id); None when it is not one."""
    head, sep, run_id = text.partition(":")
    try:
        started = float(head)
    except ValueError:
        return None
    return (started, run_id) if sep and math.isfinite(started) else None


def _cursor(started_at: float, run_id: str) -> str:
    return f"{started_at!r}:{run_id}"


def list_runs(c: sqlite3.Connection, limit: int, before: str | None, where: RunFilter) -> RunPage:
    """Newest first; at most ``SCAN_BOUND`` runs looked at per call (see the module's doc)."""
    limit = max(0, limit)
    position = parse_cursor(before) if before is not None else None
    if (before is not None and position is None) or limit == 0:
        return RunPage([], None)
    filtered = any(getattr(where, name) is not None for name in RunFilter.__slots__)
    batch = 250 if filtered else limit + 8
    found: list[RunRecord] = []
    looked = 0
    last: tuple[float, str] | None = None
    while looked < SCAN_BOUND:
        candidates = _candidates(c, position, min(batch, SCAN_BOUND - looked))
        if not candidates:
            return RunPage(found, None)
        records = _records(c, candidates)
        for run_id, started, start_seen in candidates:
            looked += 1
            last = (started, run_id)
            record = records.get(run_id)
            if record is None or not _matches(record, where):
                continue
            found.append(_with_start(record, started, start_seen))
            if len(found) == limit:
                return RunPage(found, found[-1].cursor)
        position = last
    return RunPage(found, _cursor(*last) if last is not None else None)


def _candidates(
    c: sqlite3.Connection, position: tuple[float, str] | None, count: int
) -> list[tuple[str, float, float | None]]:
    sql = "SELECT run_id, started_at, start_seen_at FROM runs"
    args: tuple[Any, ...] = ()
    if position is not None:
        sql += " WHERE (started_at, run_id) < (?, ?)"
        args = position
    sql += " ORDER BY started_at DESC, run_id DESC LIMIT ?"
    return [(row[0], row[1], row[2]) for row in c.execute(sql, (*args, count))]


def _matches(record: RunRecord, where: RunFilter) -> bool:
    return all(
        wanted is None or wanted == have
        for wanted, have in (
            (where.agent_id, record.agent_id),
            (where.status, record.status),
            (where.trigger, record.trigger),
            (where.delivery, record.health),
        )
    )


def _with_start(record: RunRecord, started: float, start_seen: float | None) -> RunRecord:
    return RunRecord(
        record.run_id, record.agent_id, record.trigger, record.title, started, start_seen,
        record.last_event_at, record.status, record.ended, record.ended_at, record.outputs,
        record.events, record.health, _cursor(started, record.run_id),
    )  # fmt: skip


def _chunks(items: Sequence[str], size: int = 400) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _records(
    c: sqlite3.Connection, candidates: Sequence[tuple[str, float, float | None]]
) -> dict[str, RunRecord]:
    """The runs among ``candidates`` with events of their own, their start not yet set."""
    aggregates: list[Sequence[Any]] = []
    health: dict[str, str] = {}
    for ids in _chunks([run_id for run_id, _, _ in candidates]):
        marks = ", ".join("?" * len(ids))
        aggregates += c.execute(_AGGREGATES_SQL.format(marks), ids).fetchall()
        for run_id, *flags in c.execute(_HEALTH_SQL.format(marks), ids):
            health[run_id] = next((s for s, on in zip(_HEALTHS, flags, strict=True) if on), "none")
    seqs = sorted({row[i] for row in aggregates for i in (2, 5, 6, 7) if row[i] is not None})
    events: dict[int, Sequence[Any]] = {}
    for start in range(0, len(seqs), 400):
        part = seqs[start : start + 400]
        sql = _EVENTS_SQL.format(", ".join("?" * len(part)))
        events.update((row[0], row) for row in c.execute(sql, part))
    records = {}
    for run_id, count, newest, last_at, ended_at, end_seq, trigger_seq, output_seq in aggregates:
        final = events[end_seq if end_seq is not None else newest]
        trigger = events.get(trigger_seq) if trigger_seq is not None else None
        outputs = events[output_seq][3] if output_seq is not None else 0
        records[run_id] = RunRecord(
            run_id=run_id,
            agent_id=events[newest][2],
            trigger=trigger[4] if trigger is not None else "none",
            title=trigger[5] if trigger is not None else None,
            started_at=0.0,
            start_seen_at=None,
            last_event_at=last_at,
            status=final[1],
            ended=end_seq is not None,
            ended_at=ended_at,
            outputs=outputs,
            events=count,
            health=health.get(run_id, "none"),
            cursor="",
        )
    return records


def get_run(c: sqlite3.Connection, run_id: str) -> RunDetail | None:
    row = c.execute(
        "SELECT started_at, start_seen_at FROM runs WHERE run_id = ?", (run_id,)
    ).fetchone()
    if row is None:
        return None
    record = _records(c, [(run_id, row[0], row[1])]).get(run_id)
    if record is None:  # only TEST or DIGEST events: no run
        return None
    record = _with_start(record, row[0], row[1])
    sql = f"""SELECT {_EVENT_COLUMNS}, e.body FROM events e WHERE e.run_id = ? AND {_OWN}
        ORDER BY e.seq LIMIT ?"""
    rows = c.execute(sql, (run_id, MAX_TIMELINE)).fetchall()
    jobs = _jobs_of(c, [r[0] for r in rows], with_log=True)
    events = tuple(_event_record(r, jobs.get(r[0], ()), body=bytes(r[9])) for r in rows)
    return RunDetail(
        record, events, _cards(c, run_id), events_left_out=max(0, record.events - len(events))
    )


_CARD_CHANNELS_SQL = """SELECT DISTINCT j.channel FROM events e JOIN jobs j ON j.event_seq = e.seq
    WHERE e.run_id = ? AND j.mode = 'card'"""
"""A run's jobs are found through ``events_run`` and ``jobs_event`` (``jobs.run_id`` has no full
index)."""
_CARD_TEXT_SQL = """SELECT a.rendered, a.at FROM events e JOIN jobs j ON j.event_seq = e.seq
        JOIN attempts a ON a.job_id = j.id
    WHERE e.run_id = ? AND j.channel = ? AND j.mode = 'card' AND j.state = 'sent'
        AND a.outcome = 'sent' AND a.rendered IS NOT NULL
    ORDER BY j.id DESC, a.id DESC LIMIT 1"""


def _cards(c: sqlite3.Connection, run_id: str) -> tuple[LiveCard, ...]:
    """Per channel with a ref, a card's bookkeeping or a card job: the card as it stands."""
    refs = {
        channel: (channel_id, message_id)
        for channel, channel_id, message_id in c.execute(
            "SELECT channel, channel_id, message_id FROM refs WHERE run_id = ?", (run_id,)
        )
    }
    states = dict(c.execute("SELECT channel, state FROM cards WHERE run_id = ?", (run_id,)))
    card_jobs = c.execute(_CARD_CHANNELS_SQL, (run_id,))
    channels = sorted({*refs, *states, *(row[0] for row in card_jobs)})
    cards = []
    for channel in channels:
        channel_id, message_id = refs.get(channel, (None, None))
        text = c.execute(_CARD_TEXT_SQL, (run_id, channel)).fetchone()
        sent, at = text if text is not None else (None, None)
        cards.append(LiveCard(channel, channel_id, message_id, states.get(channel), sent, at))
    return tuple(cards)
