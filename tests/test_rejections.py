"""The rejection log: one WARNING per reason per window, with how many were held back."""

from __future__ import annotations

import logging

import pytest

from relay.rejections import KEEP, KEEP_HOURS, RejectionLog


def test_one_line_per_reason_per_window_then_the_held_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="relay.receiver")
    now = [1000.0]
    rejections = RejectionLog(clock=lambda: now[0], window=60)
    for _ in range(100):
        rejections.record(401, "bad signature", "10.0.0.9")
    rejections.record(400, "invalid JSON", "10.0.0.9")
    assert len(caplog.records) == 2
    now[0] += 61
    rejections.record(401, "bad signature", "10.0.0.9")
    assert len(caplog.records) == 3
    assert "99 more like it" in caplog.records[-1].getMessage()


def test_keeps_the_newest_few() -> None:
    rejections = RejectionLog()
    for n in range(KEEP + 10):
        rejections.record(422, "not a Mosaic event", f"client-{n}")
    recent = rejections.recent()
    assert len(recent) == KEEP
    assert recent[0].client == f"client-{KEEP + 9}"


def test_counts_by_reason_and_hour_for_the_overview() -> None:
    now = [100 * 3600.0 + 10]
    rejections = RejectionLog(clock=lambda: now[0])
    for _ in range(3):
        rejections.record(401, "bad signature", "10.0.0.9")
    rejections.record(400, "invalid JSON", None)
    now[0] += 3600
    rejections.record(400, "invalid JSON", None)
    assert rejections.by_reason(100 * 3600.0) == [("401 bad signature", 3), ("400 invalid JSON", 2)]
    assert rejections.by_reason(101 * 3600.0 + 5) == [("400 invalid JSON", 1)]
    now[0] += KEEP_HOURS * 3600  # hours older than KEEP_HOURS are forgotten
    rejections.record(413, "body too large", None)
    assert rejections.by_reason(0) == [("413 body too large", 1)]
