"""Reconciliation: runs whose end the relay never heard of, found through Mosaic's API.

Mosaic documents no webhook retries, so a ``RUN_FINISHED`` sent while the relay was down is lost.
Every ``mosaic.reconcile.interval`` one replica (the holder of the store's ``reconcile`` lease)
lists the runs created within ``lookback`` that are in a terminal state, and for each whose end is
not stored builds that ``RUN_FINISHED`` (marked ``"_relay": {"source": "reconciled"}``) and
ingests it like a webhook. The dedup key of a run's end (run, status, counts) makes the
reconciled copy and a late real webhook duplicates of each other: one alert per run end.

The API filters on creation time only, and a run created long ago may end now, so each pass
covers the whole lookback window; a run whose ``updated_at`` has not changed since a pass looked
at it is skipped without touching the store. The stored dedup keys are the durable record: a
restart neither repeats an alert (the key is there) nor skips one (the next pass covers the
whole window again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relay.events import TERMINAL_STATUSES
from relay.ingest import Ingest, finished_key
from relay.metrics import Metrics
from relay.mosaic.client import (
    MosaicAuthError,
    MosaicClient,
    MosaicError,
    MosaicUnavailableError,
)
from relay.mosaic.models import Run, RunSummary
from relay.mosaic.pacing import Pacer
from relay.mosaic.settings import MosaicSettings
from relay.store.base import Store

__all__ = [
    "ClientFactory",
    "PassReport",
    "Reconciler",
    "api_error_label",
    "finished_payload",
]

log = logging.getLogger("relay.reconcile")

ClientFactory = Callable[[MosaicSettings], MosaicClient]
"""A client for the API settings serving now (the app's shares the relay's HTTP session)."""
LEASE = "reconcile"
BATCH = 100
"""Runs checked against the store at once (one API page)."""
SETTLE = 60.0
"""A run that changed this recently waits for the next pass: its webhook may be on its way."""


def api_error_label(exc: MosaicError) -> str:
    """The ``status`` label of ``relay_mosaic_api_errors_total``: the HTTP status, or why not."""
    if exc.status is not None:
        return str(exc.status)
    return "unreachable" if isinstance(exc, MosaicUnavailableError) else "invalid"


def _dump(value: Any) -> Any:
    return None if value is None else value.model_dump(mode="json")


def finished_payload(
    run: RunSummary, *, detail: Run | None = None, triggered_by: Any = None
) -> dict[str, Any]:
    """The ``RUN_FINISHED`` webhook Mosaic would have sent for ``run`` (``detail``: its
    ``GET /agent_run`` answer, for ``needs_credits`` and ``errors``; ``triggered_by``: what the
    relay knows when the API answer has none)."""
    payload: dict[str, Any] = {
        "flag": "RUN_FINISHED",
        "agent_id": run.agent_id,
        "run_id": run.run_id,
        "status": run.status,
        "status_message": run.status_message,
        "node_status_counts": _dump(run.counts),
        "inputs": [_dump(item) for item in run.inputs],
        "outputs": [_dump(item) for item in run.outputs],
        "triggered_by": _dump(run.triggered_by) if run.triggered_by else triggered_by,
    }
    if detail is not None:
        payload["needs_credits"] = detail.needs_credits
        payload["errors"] = detail.errors
    return payload


def end_key(run: RunSummary) -> str:
    counts = run.counts
    return finished_key(run.run_id, run.status, counts.completed, counts.in_progress, counts.failed)


@dataclass
class PassReport:
    """One reconciliation pass: ``result`` is ok, off, skipped (another replica holds the
    lease), auth_error, unavailable or error."""

    at: float
    result: str
    listed: int = 0
    """Terminal runs the API listed."""
    recovered: list[str] = field(default_factory=list)
    """Runs whose end was ingested (in a dry run: would have been)."""
    api_calls: int = 0
    error: str | None = None


class Reconciler:
    """Reads ``settings()`` at each pass, so a reload takes effect at the next one."""

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
        self._clock = clock
        self._seen: dict[str, datetime] = {}
        """run_id -> the ``updated_at`` of a terminal run handled by an earlier pass."""
        self._auth_failed_for: object = None
        self.last: PassReport | None = None
        self.pacer = Pacer()
        """The last pass that ran (not one skipped for the lease)."""

    def _interval(self) -> float | None:
        settings = self._settings()
        if settings.api_key is None or settings.reconcile == "off":
            return None
        return settings.reconcile.interval

    async def run_forever(self) -> None:
        """A pass now, then one per interval (``pacer.wake()`` after a reload); never raises."""
        while True:
            await self.pacer.turn(self._interval)
            try:
                await self.run_once()
            except Exception:  # e.g. the store refused the lease: the next pass tries again
                log.exception("reconciliation failed")

    async def run_once(self, *, dry_run: bool = False, lease: bool = True) -> PassReport:
        """One pass; ``dry_run`` ingests nothing (it only reports); ``lease=False`` runs even
        while another replica holds the lease (a pass asked for by hand)."""
        settings = self._settings()
        now = self._clock()
        if settings.api_key is None or settings.reconcile == "off":
            return self._finish(PassReport(now, "off"), dry_run)
        interval = settings.reconcile.interval
        if lease and not dry_run and not await self._store.take_lease(LEASE, ttl=interval):
            return PassReport(now, "skipped")
        report = PassReport(now, "ok")
        client = self.client_factory(settings)
        try:
            await self._pass(client, settings, report, dry_run)
            self._auth_failed_for = None
        except MosaicError as exc:
            self._api_failed(exc, settings, report)
        except Exception as exc:
            log.exception("reconciliation failed")
            report.result, report.error = "error", str(exc)
        finally:
            report.api_calls = client.api_calls
            await client.close()
        return self._finish(report, dry_run)

    def _finish(self, report: PassReport, dry_run: bool) -> PassReport:
        if dry_run:
            return report
        self.last = report
        if self._metrics is not None and report.result != "off":
            self._metrics.reconcile_passes.labels(report.result).inc()
            self._metrics.runs_recovered.inc(len(report.recovered))
        if report.recovered:
            log.warning(
                "recovered %d run end(s) the relay had not received: %s",
                len(report.recovered),
                ", ".join(report.recovered[:20]),
            )
        return report

    def _api_failed(self, exc: MosaicError, settings: MosaicSettings, report: PassReport) -> None:
        if self._metrics is not None:
            self._metrics.mosaic_api_errors.labels(api_error_label(exc)).inc()
        report.error = str(exc)
        if isinstance(exc, MosaicAuthError):
            report.result = "auth_error"
            key = (settings.api_key, settings.api_url)
            if self._auth_failed_for != key:  # once per configured key, not once per pass
                self._auth_failed_for = key
                log.error("mosaic.api_key is not accepted (a configuration error): %s", exc)
        else:
            report.result = "unavailable" if isinstance(exc, MosaicUnavailableError) else "error"
            log.warning("reconciliation with Mosaic's API failed; next pass retries: %s", exc)

    async def _pass(
        self, client: MosaicClient, settings: MosaicSettings, report: PassReport, dry_run: bool
    ) -> None:
        assert settings.reconcile != "off"
        created_from = datetime.fromtimestamp(report.at - settings.reconcile.lookback, UTC)
        settled_before = datetime.fromtimestamp(report.at - SETTLE, UTC)
        seen, batch = self._seen, []
        listed: dict[str, datetime] = {}
        async for run in client.runs(created_from=created_from, status=TERMINAL_STATUSES):
            report.listed += 1
            if run.updated_at is not None and seen.get(run.run_id) == run.updated_at:
                listed[run.run_id] = run.updated_at
                continue
            if run.updated_at is not None and run.updated_at > settled_before:
                continue
            batch.append(run)
            if len(batch) >= BATCH:
                listed.update(await self._check(client, batch, report, dry_run))
                batch = []
        listed.update(await self._check(client, batch, report, dry_run))
        if not dry_run:
            self._seen = listed  # runs older than the lookback drop out

    async def _check(
        self, client: MosaicClient, runs: list[RunSummary], report: PassReport, dry_run: bool
    ) -> dict[str, datetime]:
        """Ingest the ends not stored; returns the runs handled (run_id -> updated_at)."""
        if not runs:
            return {}
        known = await self._store.known_dedup_keys([end_key(run) for run in runs])
        for run in runs:
            if end_key(run) in known:
                continue
            if dry_run or await self._recover(client, run):
                report.recovered.append(run.run_id)
        return {run.run_id: run.updated_at for run in runs if run.updated_at is not None}

    async def _recover(self, client: MosaicClient, run: RunSummary) -> bool:
        """Ingest ``run``'s end; False when a webhook stored it meanwhile."""
        detail = await self._detail(client, run) if run.status == "failed" else None
        result, _ = await self._ingest.built(finished_payload(run, detail=detail), "reconciled")
        return not result.duplicate

    async def _detail(self, client: MosaicClient, run: RunSummary) -> Run | None:
        """``needs_credits`` and ``errors`` of a failed run, if the API gives them now."""
        try:
            return await client.run(run.run_id)
        except MosaicAuthError:
            raise
        except MosaicError as exc:
            if self._metrics is not None:
                self._metrics.mosaic_api_errors.labels(api_error_label(exc)).inc()
            log.info("run %s recovered without its errors: %s", run.run_id, exc)
            return None
