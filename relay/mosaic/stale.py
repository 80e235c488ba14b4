"""The stale-run watch: a run that hangs sends no more webhooks, so the relay looks for silence.

A run whose last stored event is older than ``mosaic.stale_after`` and whose end is not stored is
asked about with ``GET /agent_run/{id}`` when the API is on: if it ended, its ``RUN_FINISHED`` is
ingested as reconciled; if it still runs, one ``RUN_STALE`` event is ingested
(``"_relay": {"source": "watch", "silent_for": seconds}``, status running, the run's last known
counts). Without an API key (or when the API does not answer) the relay reports from what it knows:
started, never finished. A ``RUN_STALE`` is itself the run's newest event, so the run is quiet
again only ``stale_after`` later (once per period, across restarts), and never after its end.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from relay.ingest import Ingest
from relay.metrics import Metrics
from relay.mosaic.client import MosaicClient, MosaicError
from relay.mosaic.models import Run
from relay.mosaic.pacing import Pacer
from relay.mosaic.reconcile import ClientFactory, api_error_label, finished_payload
from relay.mosaic.settings import MosaicSettings
from relay.store.base import QuietRun, Store

__all__ = ["StaleWatch", "check_interval"]

log = logging.getLogger("relay.stale")

LEASE = "stale"
BATCH = 1000
"""Quiet runs handled per check at most (the rest wait for the next one)."""


def check_interval(stale_after: float) -> float:
    """How often to look for quiet runs: a tenth of ``stale_after``, from 1 s to 5 min."""
    return min(300.0, max(1.0, stale_after / 10))


def _silent_for(last: dict[str, Any], last_event_at: float, now: float) -> float:
    """Seconds since the run's last real news (a ``RUN_STALE`` carries the silence before it)."""
    note = last.get("_relay")
    before = note.get("silent_for") if isinstance(note, dict) else None
    earlier = before if isinstance(before, int | float) and last.get("flag") == "RUN_STALE" else 0
    return max(0.0, now - last_event_at) + float(earlier)


def stale_payload(quiet: QuietRun, last: dict[str, Any], run: Run | None) -> dict[str, Any]:
    counts = (
        run.counts.model_dump(mode="json") if run is not None else last.get("node_status_counts")
    )
    return {
        "flag": "RUN_STALE",
        "agent_id": quiet.agent_id,
        "run_id": quiet.run_id,
        "status": "running",
        "node_status_counts": counts,
        "triggered_by": last.get("triggered_by"),
    }


class StaleWatch:
    """Reads ``settings()`` at each check, so a reload takes effect at the next one."""

    def __init__(
        self,
        store: Store,
        ingest: Ingest,
        settings: Callable[[], MosaicSettings],
        client_factory: ClientFactory,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._ingest = ingest
        self._settings = settings
        self.client_factory = client_factory
        self._metrics = metrics
        self.clock = clock
        self._api_failed = False
        self.pacer = Pacer()

    def _interval(self) -> float | None:
        stale_after = self._settings().stale_after
        return None if stale_after == "off" else check_interval(stale_after)

    async def run_forever(self) -> None:
        """A check now, then one per ``check_interval`` (``pacer.wake()`` after a reload)."""
        while True:
            await self.pacer.turn(self._interval)
            try:
                await self.check_once()
            except Exception:
                log.exception("the stale-run watch failed; it tries again")

    async def check_once(self) -> list[str]:
        """Handle the runs quiet for ``stale_after``; returns the run ids reported stale."""
        settings = self._settings()
        if settings.stale_after == "off":
            return []
        now = self.clock()
        ttl = check_interval(settings.stale_after) * 0.9
        if not await self._store.take_lease(LEASE, ttl=ttl):
            return []
        quiet = await self._store.quiet_runs(before=now - settings.stale_after, limit=BATCH)
        if not quiet:
            return []
        self._api_failed = False  # one failed call: the rest of this check uses what it knows
        client = self.client_factory(settings) if settings.api_enabled else None
        try:
            return [run.run_id for run in quiet if await self._handle(run, client, now)]
        finally:
            if client is not None:
                await client.close()

    async def _handle(self, quiet: QuietRun, client: MosaicClient | None, now: float) -> bool:
        """Reconcile ``quiet`` if it ended, else report it stale (True)."""
        last = _json_object(quiet.last_body)
        run = None
        if client is not None and not self._api_failed:
            run = await self._ask(client, quiet.run_id)
        if run is not None and run.is_terminal:
            payload = finished_payload(run, detail=run, triggered_by=last.get("triggered_by"))
            result, _ = await self._ingest.built(payload, "reconciled", at=now)
            if not result.duplicate and self._metrics is not None:
                self._metrics.runs_recovered.inc()
            log.warning("run %s ended without a webhook the relay received", quiet.run_id)
            return False
        silent_for = round(_silent_for(last, quiet.last_event_at, now))
        payload = stale_payload(quiet, last, run)
        await self._ingest.built(payload, "watch", at=now, silent_for=silent_for)
        if self._metrics is not None:
            self._metrics.stale_runs.inc()
        return True

    async def _ask(self, client: MosaicClient, run_id: str) -> Run | None:
        """The run as Mosaic sees it now; None when unknown or the API does not answer."""
        try:
            return await client.run(run_id)
        except MosaicError as exc:
            self._api_failed = True
            if self._metrics is not None:
                self._metrics.mosaic_api_errors.labels(api_error_label(exc)).inc()
            log.warning("cannot ask Mosaic about quiet run %s: %s", run_id, exc)
            return None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
