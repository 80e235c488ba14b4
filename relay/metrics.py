"""Prometheus metrics, one registry per app (the global registry breaks with several apps)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from relay.events import KNOWN_FLAGS
from relay.store.base import ChannelStatus

__all__ = ["CONTENT_TYPE", "Metrics", "flag_label"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def flag_label(flag: str | None) -> str:
    """Bounded label values: known flags, else ``other`` (``none`` before the body was read)."""
    if flag is None:
        return "none"
    return flag if flag in KNOWN_FLAGS else "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self.queue = Gauge(
            "relay_queue_jobs",
            "Delivery jobs by channel and state (read from the store at scrape time).",
            ["channel", "state"],
            registry=r,
        )
        self.oldest_pending = Gauge(
            "relay_oldest_pending_age_seconds",
            "Age of the oldest pending or in-flight delivery job, 0 when none.",
            registry=r,
        )
        self.reloads = Counter(
            "relay_config_reloads",
            "Config reloads by result (success, failure).",
            ["result"],
            registry=r,
        )
        self.config_info = Gauge(
            "relay_config_info", "The loaded config (value 1).", ["sha256"], registry=r
        )
        self.config_loaded = Gauge(
            "relay_config_loaded_timestamp_seconds",
            "When the loaded config was loaded.",
            registry=r,
        )
        self.config_ok = Gauge(
            "relay_config_last_reload_success",
            "1 if the last reload attempt succeeded, 0 if the file on disk is broken.",
            registry=r,
        )
        self.config_ok.set(1)
        self.channel_check = Gauge(
            "relay_channel_check_ok",
            "1 if the channel's last credentials check (at start and reload) passed, 0 if not.",
            ["channel"],
            registry=r,
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
        self.mosaic_api_errors = Counter(
            "relay_mosaic_api_errors",
            "Failed calls to Mosaic's API by status (an HTTP status, unreachable, invalid).",
            ["status"],
            registry=r,
        )
        for result in ("success", "failure"):
            self.reloads.labels(result)  # exported as 0 from the start: a first failure shows

    def config_loaded_now(self, sha256: str) -> None:
        self.config_info.clear()
        self.config_info.labels(sha256=sha256).set(1)
        self.config_loaded.set(time.time())

    def config_reloaded(self, ok: bool) -> None:
        """Count a reload attempt; the gauge says whether the file on disk is good."""
        self.reloads.labels("success" if ok else "failure").inc()
        self.config_ok.set(1 if ok else 0)

    def channel_checks(self, outcomes: dict[str, bool]) -> None:
        """The last check of each configured channel (channels no longer configured vanish)."""
        self.channel_check.clear()
        for channel, ok in outcomes.items():
            self.channel_check.labels(channel=channel).set(1 if ok else 0)

    def update_queue(self, rows: list[ChannelStatus], now: float) -> None:
        self.queue.clear()
        oldest: float | None = None
        for row in rows:
            self.queue.labels(channel=row.channel, state=row.state).set(row.count)
            if row.state in ("pending", "inflight") and row.oldest_created_at is not None:
                oldest = min(oldest or row.oldest_created_at, row.oldest_created_at)
        self.oldest_pending.set(0 if oldest is None else max(0.0, now - oldest))

    def render(self) -> bytes:
        return generate_latest(self.registry)
