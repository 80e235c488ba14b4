from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from relay.digest.settings import DigestSettings, QuietHoursSettings
from relay.digest.windows import QuietHours, Schedule

BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=BERLIN).timestamp()  # type: ignore[misc]


def local(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, BERLIN).isoformat()


def cron(expression: str) -> Schedule:
    return Schedule(DigestSettings(schedule=expression, timezone="Europe/Berlin"))


def test_a_window_ends_at_the_first_fire_after_the_event() -> None:
    daily = cron("0 9 * * *")
    assert local(daily.next_fire(at(2026, 11, 30, 8, 59))) == "2026-11-30T09:00:00+01:00"
    assert local(daily.next_fire(at(2026, 11, 30, 9, 0))) == "2026-12-01T09:00:00+01:00"
    assert daily.last_fire(at(2026, 11, 30, 9, 0)) == at(2026, 11, 30, 9, 0)
    assert daily.last_fire(at(2026, 11, 30, 8, 59, 59)) == at(2026, 11, 29, 9, 0)


def test_a_daily_digest_keeps_local_time_across_dst() -> None:
    daily = cron("0 9 * * *")
    # 29 March 2026: clocks spring forward; 09:00 is 08:00 UTC before, 07:00 UTC after.
    saturday = daily.next_fire(at(2026, 3, 28, 0, 0))
    sunday = daily.next_fire(saturday)
    assert local(saturday) == "2026-03-28T09:00:00+01:00"
    assert local(sunday) == "2026-03-29T09:00:00+02:00"
    assert sunday - saturday == 23 * 3600


def test_a_time_in_the_repeated_hour_fires_once_when_clocks_go_back() -> None:
    nightly = cron("30 2 * * *")
    first = nightly.next_fire(at(2026, 10, 24, 12, 0))
    assert local(first) == "2026-10-25T02:30:00+02:00"
    assert local(nightly.next_fire(first)) == "2026-10-26T02:30:00+01:00"
    assert nightly.last_fire(first + 3600) == first  # 02:30 CET that night is no fire time


def test_every_half_hour_keeps_firing_through_the_repeated_hour() -> None:
    half_hourly = cron("*/30 * * * *")
    fire = at(2026, 10, 25, 2, 0)
    fires = []
    for _ in range(4):
        fire = half_hourly.next_fire(fire)
        fires.append(local(fire))
    assert fires == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_every_is_aligned_to_the_epoch() -> None:
    hourly = Schedule(DigestSettings(every=3600))
    assert hourly.next_fire(7200.5) == 10800
    assert hourly.last_fire(7200.5) == 7200


def quiet(**settings: object) -> QuietHours:
    base = {"from": "22:00", "to": "08:00", "timezone": "Europe/Berlin"}
    return QuietHours(QuietHoursSettings.model_validate({**base, **settings}))


def test_a_quiet_period_spans_midnight_and_ends_at_to() -> None:
    night = quiet()
    assert night.period_end(at(2026, 11, 30, 21, 59)) is None
    assert night.period_end(at(2026, 11, 30, 22, 0)) == at(2026, 12, 1, 8, 0)
    assert night.period_end(at(2026, 12, 1, 7, 59)) == at(2026, 12, 1, 8, 0)
    assert night.period_end(at(2026, 12, 1, 8, 0)) is None


def test_days_name_the_day_a_quiet_period_starts() -> None:
    weekdays = quiet(days=["mon", "tue", "wed", "thu", "fri"])
    assert weekdays.period_end(at(2026, 12, 5, 7, 0)) == at(2026, 12, 5, 8, 0)  # Fri night
    assert weekdays.period_end(at(2026, 12, 5, 23, 0)) is None  # Saturday night
    assert weekdays.period_end(at(2026, 12, 7, 7, 0)) is None  # Sunday night, Monday morning
    assert weekdays.period_end(at(2026, 12, 7, 23, 0)) == at(2026, 12, 8, 8, 0)


def test_a_quiet_period_within_one_day() -> None:
    lunch = quiet(**{"from": "12:00", "to": "13:30"})
    assert lunch.period_end(at(2026, 12, 1, 12, 45)) == at(2026, 12, 1, 13, 30)
    assert lunch.period_end(at(2026, 12, 1, 23, 0)) is None


def test_a_quiet_period_over_the_spring_forward_night_ends_at_local_eight() -> None:
    end = quiet().period_end(at(2026, 3, 28, 23, 0))
    assert end is not None and local(end) == "2026-03-29T08:00:00+02:00"
    assert end - at(2026, 3, 28, 22, 0) == 9 * 3600  # one hour less that night


def test_unquoted_yaml_times_read_as_sexagesimal_numbers_are_understood() -> None:
    settings = QuietHoursSettings.model_validate({"from": 1320, "to": "08:00"})
    assert settings.from_.hour == 22


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"schedule": "0 9 * *"}, "not a cron schedule"),
        ({"every": "30s"}, "at least 1m"),
        ({}, "either schedule"),
        ({"schedule": "0 9 * * *", "every": "1h"}, "either schedule"),
        ({"every": "1h", "timezone": "Europe/Berln"}, "unknown time zone"),
    ],
)
def test_bad_digest_settings_say_what_is_wrong(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DigestSettings.model_validate(settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"from": "22:00", "to": "22:00"}, "the same time"),
        ({"from": "7pm", "to": "08:00"}, "not a time of day"),
        ({"from": "22:00", "to": "08:00", "days": []}, "days is empty"),
        ({"from": "22:00", "to": "08:00", "days": ["monday"]}, "days"),
    ],
)
def test_bad_quiet_hours_say_what_is_wrong(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        QuietHoursSettings.model_validate(settings)
