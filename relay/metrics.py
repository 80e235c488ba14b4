"""Prometheus metrics, one registry per app (the global registry breaks with several apps).

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set before prometheus_client is
imported), each worker writes its values to files in that folder and ``render()`` merges every
worker's files, so ``/metrics`` on any worker shows the whole relay: counters and histograms are
summed, and each gauge is merged as its ``multiprocess_mode`` says (see ``Metrics``).
"""

from __future__ import annotations

import glob
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from relay.digest.groups import group_kind
from relay.events import KNOWN_FLAGS
from relay.store.base import ChannelStatus, HeldGroup

__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "Metrics", "flag_label", "mark_worker_dead"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# A file entry cannot be deleted, so a label set a worker no longer has is set to a value the
# merge ignores (+inf under min, -inf under max); render() drops what is still infinite.
_GONE_UNDER_MIN = math.inf
_GONE_UNDER_MAX = -math.inf

log = logging.getLogger(__name__)


def flag_label(flag: str | None) -> str:
    """Bounded label values: known flags, else ``other`` (``none`` before the body was read)."""
    if flag is None:
        return "none"
    return flag if flag in KNOWN_FLAGS else "other"


def mark_worker_dead(pid: int, directory: str | Path | None = None) -> None:
    """Drop a dead worker's gauges from the merged metrics (its counts stay in the sums).

    ``directory`` defaults to ``$PROMETHEUS_MULTIPROC_DIR``; without either this does nothing.
    """
    folder = directory if directory is not None else os.environ.get(MULTIPROC_ENV)
    if folder:
        mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]


def _in_files() -> bool:
    """Whether this process's metric values live in the multiprocess files.

    prometheus_client decides once, when it is imported: setting the variable later has no effect.
    """
    in_files = bool(getattr(prometheus_values.ValueClass, "_multiprocess", False))
    if not in_files and MULTIPROC_ENV in os.environ:
        log.warning(
            "%s was set after prometheus_client was imported: /metrics shows this process only",
            MULTIPROC_ENV,
        )
    return in_files


class _QueueSnapshot(Collector):
    """Queue depth as read from the store by the last scrape of this process.

    The store is shared, so the worker serving a scrape reports the whole queue itself: kept out
    of the multiprocess files, where another worker's older reading of a label set that has since
    emptied would linger.
    """

    def __init__(self) -> None:
        self.rows: list[ChannelStatus] = []
        self.oldest_age = 0.0
        self.held: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "relay_queue_jobs",
            "Delivery jobs by channel and state (read from the store at scrape time).",
            labels=["channel", "state"],
        )
        for row in self.rows:
            queue.add_metric([row.channel, row.state], row.count)
        yield queue
        yield GaugeMetricFamily(
            "relay_oldest_pending_age_seconds",
            "Age of the oldest pending or in-flight delivery job, 0 when none.",
            value=self.oldest_age,
        )
        held = GaugeMetricFamily(
            "relay_held_events",
            "Events waiting for a digest window or the end of quiet hours, by channel and kind "
            "(digest, quiet; read from the store at scrape time).",
            labels=["channel", "kind"],
        )
        for (channel, kind), count in sorted(self.held.items()):
            held.add_metric([channel, kind], count)
        yield held


class _Merged(Collector):
    """Every process's files merged, without the label sets every live worker has left."""

    def __init__(self, directory: str) -> None:
        if not os.path.isdir(directory):
            raise ValueError(f"{MULTIPROC_ENV} is not a folder: {directory!r}")
        self._directory = directory

    def describe(self) -> Iterable[Metric]:
        return []  # not read at registration: the files are read at each scrape

    def collect(self) -> Iterable[Metric]:
        # A worker that is starting creates its file empty, then sizes it: nothing to read yet.
        files = [
            path for path in glob.glob(os.path.join(self._directory, "*.db")) if _size(path) > 0
        ]
        # prometheus_client's multiprocess module is not annotated
        merged = list(MultiProcessCollector.merge(files))  # type: ignore[no-untyped-call]
        for family in merged:
            if family.type == "gauge":
                family.samples = [s for s in family.samples if not math.isinf(s.value)]
        return merged


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:  # a dead worker's gauges, just removed
        return 0


class Metrics:
    """The relay's metrics; with several workers, how each gauge merges across them:

    - config info (``livemax``): every sha256 some live worker serves (two while they disagree);
    - config loaded timestamp (``livemax``): the last time a live worker loaded its config;
    - last reload success and channel checks (``livemin``): 0 if any live worker's is 0;
    - queue depth and oldest pending age: the shared store read by the worker serving the scrape.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiprocess = _in_files()
        self._shown: dict[Gauge, set[tuple[str, ...]]] = {}
        r = self.registry
        self.webhooks = Counter(
            "relay_webhooks_received",
            "Webhooks received, by flag and result (accepted, duplicate, ok, unauthorized, "
            "invalid, too_large, overloaded, unavailable).",
            ["flag", "result"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "relay_webhook_duration_seconds",
            "Time to answer a webhook.",
            buckets=_FAST,
            registry=r,
        )
        self.deliveries = Counter(
            "relay_deliveries",
            "Delivery attempts by channel and outcome (sent, retried, dead, paced).",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "relay_delivery_latency_seconds",
            "From the event's acceptance to its message being sent.",
            ["channel"],
            buckets=_SLOW,
            registry=r,
        )
        self._queue = _QueueSnapshot()
        r.register(self._queue)
        self.reloads = Counter(
            "relay_config_reloads",
            "Config reloads by result (success, failure).",
            ["result"],
            registry=r,
        )
        self.config_info = Gauge(
            "relay_config_info",
            "The loaded config (value 1).",
            ["sha256"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.config_loaded = Gauge(
            "relay_config_loaded_timestamp_seconds",
            "When the loaded config was loaded.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.config_ok = Gauge(
            "relay_config_last_reload_success",
            "1 if the last reload attempt succeeded, 0 if the file on disk is broken.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.config_ok.set(1)
        self.channel_check = Gauge(
            "relay_channel_check_ok",
            "1 if the channel's last credentials check (at start and reload) passed, 0 if not.",
            ["channel"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.reconcile_passes = Counter(
            "relay_reconcile_passes",
            "Reconciliation passes with Mosaic's API by result (ok, skipped, auth_error, "
            "unavailable, error).",
            ["result"],
            registry=r,
        )
        self.runs_recovered = Counter(
            "relay_runs_recovered",
            "Run ends the relay never received, found through Mosaic's API and ingested.",
            registry=r,
        )
        self.stale_runs = Counter(
            "relay_stale_runs",
            "RUN_STALE events: runs with no news for mosaic.stale_after, still running.",
            registry=r,
        )
        self.digests = Counter(
            "relay_digests",
            "Messages stored for digest windows and quiet periods that ended, by kind (digest, "
            "quiet) and whether they were late (the relay was down when the window ended).",
            ["kind", "late"],
            registry=r,
        )
        self.chat_actions = Counter(
            "relay_chat_actions",
            "Presses of chat action buttons by action and result (done, failed, refused, "
            "duplicate, expired).",
            ["action", "result"],
            registry=r,
        )
        self.mosaic_api_errors = Counter(
            "relay_mosaic_api_errors",
            "Failed calls to Mosaic's API by status (an HTTP status, unreachable, invalid).",
            ["status"],
            registry=r,
        )
        for result in ("success", "failure"):
            self.reloads.labels(result)  # exported as 0 from the start: a first failure shows
        self._exposed = r
        if self._multiprocess:
            self._exposed = CollectorRegistry()
            self._exposed.register(_Merged(os.environ[MULTIPROC_ENV]))
            self._exposed.register(self._queue)

    def config_loaded_now(self, sha256: str) -> None:
        self._replace(self.config_info, {(sha256,): 1}, gone=_GONE_UNDER_MAX)
        self.config_loaded.set(time.time())

    def config_reloaded(self, ok: bool) -> None:
        """Count a reload attempt; the gauge says whether the file on disk is good."""
        self.reloads.labels("success" if ok else "failure").inc()
        self.config_ok.set(1 if ok else 0)

    def channel_checks(self, outcomes: dict[str, bool]) -> None:
        """The last check of each configured channel (channels no longer configured vanish)."""
        checks: dict[tuple[str, ...], float] = {
            (channel,): 1.0 if ok else 0.0 for channel, ok in outcomes.items()
        }
        self._replace(self.channel_check, checks, gone=_GONE_UNDER_MIN)

    def update_held(self, groups: list[HeldGroup]) -> None:
        held: dict[tuple[str, str], int] = {}
        for group in groups:
            key = (group.channel, group_kind(group.group))
            held[key] = held.get(key, 0) + group.count
        self._queue.held = held

    def update_queue(self, rows: list[ChannelStatus], now: float) -> None:
        oldest: float | None = None
        for row in rows:
            if row.state in ("pending", "inflight") and row.oldest_created_at is not None:
                oldest = min(oldest or row.oldest_created_at, row.oldest_created_at)
        self._queue.rows = list(rows)
        self._queue.oldest_age = 0 if oldest is None else max(0.0, now - oldest)

    def render(self) -> bytes:
        """This app's metrics; with several workers, every worker's merged."""
        return generate_latest(self._exposed)

    def _replace(self, gauge: Gauge, values: Mapping[tuple[str, ...], float], gone: float) -> None:
        """Make these the gauge's only label sets."""
        if self._multiprocess:  # clear() cannot delete the file entries
            for left in self._shown.get(gauge, set()) - values.keys():
                gauge.labels(*left).set(gone)
        else:
            gauge.clear()
        for labelvalues, value in values.items():
            gauge.labels(*labelvalues).set(value)
        self._shown[gauge] = set(values)
