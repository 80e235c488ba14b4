"""``record``: each outcome's store mark, metric and log line (deliveries at DEBUG), fake clock."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from relay.delivery.outcomes import Dead, Later, Outcome, Retry, Sent, Wait
from relay.delivery.record import Recorder
from relay.metrics import Metrics
from relay.store import Store
from tests.delivery.conftest import T0, make_job
from tests.fakes.clock import FakeClock

OUTCOMES = ("sent", "retried", "dead", "paced")


class MarkingStore:
    """Keeps the marks it is given, as ``(method, keyword arguments)``."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, dict[str, Any]]] = []

    async def mark_sent(self, job_id: str, **kwargs: Any) -> None:
        self.marks.append(("mark_sent", {"job_id": job_id, **kwargs}))

    async def mark_retry(self, job_id: str, **kwargs: Any) -> None:
        self.marks.append(("mark_retry", {"job_id": job_id, **kwargs}))

    async def mark_dead(self, job_id: str, **kwargs: Any) -> None:
        self.marks.append(("mark_dead", {"job_id": job_id, **kwargs}))


NOW = T0 + 2
LATER = {"job_id": "1", "now": NOW, "count_attempt": False}
CASES: dict[str, tuple[Outcome, tuple[str, dict[str, Any]], str | None, tuple[int, str] | None]] = {
    "sent": (
        Sent(rendered="7"),
        ("mark_sent", {"job_id": "1", "now": NOW, "rendered": "7"}),
        "sent",
        (logging.DEBUG, "delivered (sent)"),
    ),
    "a card skipped": (
        Sent(note="skipped: card unchanged"),
        ("mark_sent", {"job_id": "1", "now": NOW, "rendered": None}),
        "sent",
        (logging.DEBUG, "delivered (skipped: card unchanged)"),
    ),
    "counted retry": (
        Retry(NOW + 4, True, "HTTP 503"),
        ("mark_retry", {"job_id": "1", "next_attempt_at": NOW + 4, "error": "HTTP 503",
                        "now": NOW, "count_attempt": True}),
        "retried",
        (logging.WARNING, "delivery failed, will retry in 4.0s: HTTP 503"),
    ),
    "429 retry": (
        Retry(NOW + 30, False, "rate limited (HTTP 429)"),
        ("mark_retry", {"job_id": "1", "next_attempt_at": NOW + 30,
                        "error": "rate limited (HTTP 429)", "now": NOW, "count_attempt": False}),
        "retried",
        (logging.WARNING, "delivery failed, will retry in 30.0s: rate limited (HTTP 429)"),
    ),
    "dead": (
        Dead("invalid_auth"),
        ("mark_dead", {"job_id": "1", "error": "invalid_auth", "now": NOW}),
        "dead",
        (logging.ERROR, "delivery dead-lettered: invalid_auth"),
    ),
    "paced": (
        Later(NOW + 0.5, Wait.PACED),
        ("mark_retry", {**LATER, "next_attempt_at": NOW + 0.5, "error": "paced by rate limit"}),
        "paced",
        None,
    ),
    "card interval": (
        Later(NOW + 1, Wait.CARD_INTERVAL),
        ("mark_retry", {**LATER, "next_attempt_at": NOW + 1,
                        "error": "waiting for the card's interval"}),
        None,
        None,
    ),
}  # fmt: skip


@pytest.mark.parametrize(("outcome", "mark", "counted_as", "line"), CASES.values(), ids=CASES)
async def test_what_is_recorded(
    caplog: pytest.LogCaptureFixture,
    outcome: Outcome,
    mark: tuple[str, dict[str, Any]],
    counted_as: str | None,
    line: tuple[int, str] | None,
) -> None:
    store, metrics = MarkingStore(), Metrics()
    recorder = Recorder(cast(Store, store), clock=FakeClock(NOW), metrics=metrics)
    caplog.set_level(logging.DEBUG, logger="relay.dispatch")

    await recorder.record(make_job(), outcome)

    assert store.marks == [mark]
    counts = {
        name: metrics.registry.get_sample_value(
            "relay_deliveries_total", {"channel": "a", "outcome": name}
        )
        for name in OUTCOMES
    }
    assert counts == {name: (1.0 if name == counted_as else None) for name in OUTCOMES}
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "relay.dispatch"]
    assert lines == ([line] if line else [])
    expected = {"event_id": "e1", "run_id": "run-1", "channel": "a", "attempt": 1}
    for record in caplog.records:
        assert {key: getattr(record, key) for key in expected} == expected
        assert record.__dict__["outcome"] == counted_as


async def test_a_send_observes_the_time_since_acceptance() -> None:
    metrics = Metrics()
    recorder = Recorder(cast(Store, MarkingStore()), clock=FakeClock(NOW), metrics=metrics)
    await recorder.record(make_job(age=10), Sent())
    latency = {"channel": "a"}
    assert metrics.registry.get_sample_value("relay_delivery_latency_seconds_sum", latency) == 12
    assert metrics.registry.get_sample_value("relay_delivery_latency_seconds_count", latency) == 1


async def test_nothing_is_logged_per_delivery_at_info(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(cast(Store, MarkingStore()), clock=FakeClock(NOW), metrics=None)
    caplog.set_level(logging.INFO, logger="relay.dispatch")
    await recorder.record(make_job(), Sent(rendered="7"))
    await recorder.record(make_job(), Sent(note="skipped: card unchanged"))
    assert [r for r in caplog.records if r.name == "relay.dispatch"] == []
