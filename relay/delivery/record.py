"""The one place a delivery outcome is written down: the store's mark, the metric, the log line.

A delivery is logged at DEBUG (nothing per event at INFO: the store, the dashboard and the
metrics are the record), a retry at WARNING, a dead letter at ERROR. Every delivery log
line carries ``event_id``, ``run_id``, ``channel``, ``attempt`` and ``outcome`` (logger
``relay.dispatch``); the metric is ``relay_deliveries`` by channel and outcome.
"""

from __future__ import annotations

import logging
from typing import assert_never

from relay.delivery.clock import Clock
from relay.delivery.outcomes import Dead, Later, Outcome, Retry, Sent, Wait
from relay.metrics import Metrics
from relay.store.base import Job, Store

__all__ = ["Recorder", "log_fields"]

log = logging.getLogger("relay.dispatch")


def log_fields(job: Job, outcome: str) -> dict[str, object]:
    """What every delivery log line carries."""
    return {
        "event_id": job.event_id,
        "run_id": job.run_id,
        "channel": job.channel,
        "attempt": job.attempts + 1,
        "outcome": outcome,
    }


class Recorder:
    def __init__(self, store: Store, *, clock: Clock, metrics: Metrics | None) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics

    async def record(self, job: Job, outcome: Outcome) -> None:
        """Mark ``job`` in the store as ``outcome`` says, count it and log it."""
        now = self._clock.now()
        match outcome:
            case Sent(note=note, rendered=rendered):
                await self._store.mark_sent(job.id, now=now, rendered=rendered)
                self._count(job, "sent")
                if self._metrics is not None:
                    latency = max(0.0, now - job.created_at)
                    self._metrics.delivery_latency.labels(job.channel).observe(latency)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("delivered (%s)", note, extra=log_fields(job, "sent"))
            case Retry(at=at, counted=counted, reason=reason):
                await self._store.mark_retry(
                    job.id, next_attempt_at=at, error=reason, now=now, count_attempt=counted
                )
                self._count(job, "retried")
                log.warning(
                    "delivery failed, will retry in %.1fs: %s",
                    at - now,
                    reason,
                    extra=log_fields(job, "retried"),
                )
            case Dead(reason=reason):
                await self._store.mark_dead(job.id, error=reason, now=now)
                self._count(job, "dead")
                log.error("delivery dead-lettered: %s", reason, extra=log_fields(job, "dead"))
            case Later(at=at, why=why):
                await self._store.mark_retry(
                    job.id, next_attempt_at=at, error=why.value, now=now, count_attempt=False
                )
                if why is Wait.PACED:
                    self._count(job, "paced")
            case _:
                assert_never(outcome)

    def _count(self, job: Job, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.deliveries.labels(job.channel, outcome).inc()
