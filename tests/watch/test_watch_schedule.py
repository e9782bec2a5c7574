"""Maintenance windows with fixed datetimes, and the schedule with APScheduler's trigger objects
(fire times computed from a fixed datetime; nothing waits)."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest

from hardening.errors import HardeningError
from hardening.watch import MaintenanceWindow, active_window, cron_trigger, next_fire_times

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


def at(day: int, hour: int, minute: int = 0, second: int = 0, tz: dt.tzinfo = UTC) -> dt.datetime:
    """A time in the week of Monday 2026-06-01 (day 1 = Monday … 7 = Sunday)."""
    return dt.datetime(2026, 6, day, hour, minute, second, tzinfo=tz)


@pytest.mark.parametrize(("when", "inside"), [
    (at(6, 21, 59, 59), False),  # Saturday, just before
    (at(6, 22), True),  # start included
    (at(6, 23, 30), True),
    (at(7, 0), True),  # Sunday midnight
    (at(7, 3, 59, 59), True),
    (at(7, 4), False),  # end excluded
    (at(1, 2), False),  # Monday
    (at(3, 23), False),  # Wednesday
])
def test_weekly_window_across_midnight_utc(when: dt.datetime, inside: bool) -> None:
    window = MaintenanceWindow.parse("Sat 22:00-Sun 04:00 UTC")
    assert window.contains(when) is inside
    assert str(window) == "Sat 22:00-Sun 04:00 UTC"


def test_window_in_a_zone_is_compared_in_that_zone() -> None:
    window = MaintenanceWindow.parse("Sat 22:00-Sun 04:00 Europe/Berlin")  # June: CEST, UTC+2
    assert not window.contains(at(6, 19, 59))  # 21:59 CEST
    assert window.contains(at(6, 20, 0))  # 22:00 CEST
    assert window.contains(at(7, 1, 59))  # Sunday 03:59 CEST
    assert not window.contains(at(7, 2, 0))  # Sunday 04:00 CEST
    assert window.contains(at(6, 21, 30, tz=ZoneInfo("Europe/London")))  # 22:30 CEST
    assert window.contains(at(6, 21, 30, tz=ZoneInfo("America/New_York")))  # Sunday 03:30 CEST
    assert not window.contains(at(6, 21, 30, tz=BERLIN))


def test_window_keeps_its_wall_clock_hours_across_daylight_saving() -> None:
    window = MaintenanceWindow.parse("Sun 01:00-Sun 05:00 Europe/Berlin")
    # 2026-03-29: clocks go forward at 02:00 CET; 03:30 CEST is inside, 00:30 UTC (01:30 CET) too.
    assert window.contains(dt.datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert window.contains(dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC))  # 03:30 CEST
    assert not window.contains(dt.datetime(2026, 3, 29, 3, 0, tzinfo=UTC))  # 05:00 CEST


def test_local_time_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        window = MaintenanceWindow.parse("Sat 22:00-Sun 04:00")  # local is the default
        assert window.zone is None
        assert window.contains(at(7, 2, 30))  # 22:30 EDT on Saturday
        assert not window.contains(at(6, 22, 30))  # 18:30 EDT
    finally:
        monkeypatch.undo()
        time.tzset()


def test_end_without_a_day_is_the_next_occurrence_and_daily_windows() -> None:
    short = MaintenanceWindow.parse("Sat 22:00-04:00 UTC")
    assert short == MaintenanceWindow.parse("Sat 22:00-Sun 04:00 UTC")  # the text is not compared
    assert short != MaintenanceWindow.parse("Sat 22:00-Sun 04:00 Europe/Berlin")  # the zone is
    daily = MaintenanceWindow.parse("22:00-02:00 UTC")
    assert daily.daily and daily.contains(at(3, 23)) and daily.contains(at(4, 1, 59)) and not daily.contains(at(4, 2))
    always = MaintenanceWindow.parse("00:00-24:00 UTC")
    assert all(always.contains(at(d, h)) for d in range(1, 8) for h in range(24))
    week_wrap = MaintenanceWindow.parse("sunday 23:00-monday 01:00 utc")
    assert week_wrap.contains(at(7, 23, 30)) and week_wrap.contains(at(1, 0, 30)) and not week_wrap.contains(at(1, 1))


@pytest.mark.parametrize(("spec", "problem"), [
    ("Saturday night", "use 'Sat 22:00-Sun 04:00'"),
    ("Sat 22:00-Sun 04:00 Mars/Olympus", "unknown time zone"),
    ("Sab 22:00-Dom 04:00", "unknown day 'Sab'"),
    ("22:00-Sun 04:00", "the start needs one too"),
    ("Sat 25:00-Sun 04:00", "HH:MM"),
    ("Sat 22:00-Sat 22:00", "same time"),
    ("03:00-03:00", "same time"),
])
def test_bad_windows_are_refused_clearly(spec: str, problem: str) -> None:
    with pytest.raises(HardeningError, match=problem):
        MaintenanceWindow.parse(spec)


def test_naive_datetimes_are_refused_and_active_window_picks_the_first() -> None:
    window = MaintenanceWindow.parse("Sat 22:00-Sun 04:00 UTC")
    with pytest.raises(ValueError, match="aware"):
        window.contains(dt.datetime(2026, 6, 6, 23, 0))
    other = MaintenanceWindow.parse("Sat 23:00-23:30 UTC")
    assert active_window([window, other], at(6, 23, 10)) is window
    assert active_window([other], at(6, 22, 10)) is None
    assert active_window([], at(6, 23)) is None


# --- the schedule -----------------------------------------------------------------------------------------


def test_cron_trigger_next_fire_times_from_a_fixed_datetime() -> None:
    trigger = cron_trigger("*/15 * * * *", timezone=UTC, jitter=0)
    start = dt.datetime(2026, 6, 6, 21, 52, 10, tzinfo=UTC)
    assert next_fire_times(trigger, start, 3) == [at(6, 22), at(6, 22, 15), at(6, 22, 30)]


def test_cron_day_of_week_follows_cron_not_apscheduler() -> None:
    start = at(1, 12)  # Monday noon
    sunday = cron_trigger("0 2 * * 0", timezone=UTC, jitter=0)
    assert next_fire_times(sunday, start, 2) == [at(7, 2), at(7, 2) + dt.timedelta(days=7)]
    assert cron_trigger("0 2 * * 7", timezone=UTC).get_next_fire_time(None, start) == at(7, 2)
    weekdays = cron_trigger("30 1 * * 1-5", timezone=UTC, jitter=0)
    assert [t.strftime("%a") for t in next_fire_times(weekdays, start, 5)] == ["Tue", "Wed", "Thu", "Fri", "Mon"]
    weekend = cron_trigger("0 3 * * 6,0", timezone=UTC)
    assert [t.strftime("%a") for t in next_fire_times(weekend, start, 2)] == ["Sat", "Sun"]
    every_other = cron_trigger("0 0 * * */2", timezone=UTC)  # cron: Sun, Tue, Thu, Sat
    assert [t.strftime("%a") for t in next_fire_times(every_other, start, 4)] == ["Tue", "Thu", "Sat", "Sun"]
    named = cron_trigger("0 0 * * sat-sun", timezone=UTC)
    assert [t.strftime("%a") for t in next_fire_times(named, start, 2)] == ["Sat", "Sun"]


def test_cron_macros_and_schedule_time_zone() -> None:
    start = at(1, 12)
    assert cron_trigger("@daily", timezone=UTC).get_next_fire_time(None, start) == at(2, 0)
    assert cron_trigger("@weekly", timezone=UTC).get_next_fire_time(None, start) == at(7, 0)
    berlin = cron_trigger("0 3 * * *", timezone="Europe/Berlin")
    assert berlin.get_next_fire_time(None, start) == at(2, 1)  # 03:00 CEST is 01:00 UTC


def test_jitter_delays_each_fire_time_by_at_most_jitter_seconds() -> None:
    trigger = cron_trigger("0 * * * *", timezone=UTC, jitter=120)
    start = at(3, 10, 30)
    for _ in range(50):
        fire = trigger.get_next_fire_time(None, start)
        assert at(3, 11) <= fire <= at(3, 11, 2)


@pytest.mark.parametrize(("expr", "problem"), [
    ("* * *", "five fields"),
    ("0 2 1 * 0", "either the day of month or the day of week"),
    ("0 2 * * 8", "bad day of week"),
    ("0 2 * * 5-1", "goes backwards"),
    ("61 * * * *", "61"),
])
def test_bad_cron_lines_are_refused(expr: str, problem: str) -> None:
    with pytest.raises(HardeningError, match=problem):
        cron_trigger(expr, timezone=UTC)


def test_negative_jitter_is_refused() -> None:
    with pytest.raises(HardeningError, match="--jitter"):
        cron_trigger("@hourly", timezone=UTC, jitter=-1)
