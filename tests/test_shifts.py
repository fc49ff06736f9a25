from __future__ import annotations

from datetime import datetime, timezone

import pytest

from minewatch.shifts import ShiftCalendar, parse_shifts


def test_default_calendar_is_three_eight_hour_shifts_in_china_standard_time() -> None:
    cal = ShiftCalendar()
    night = cal.parse("2026-11-27:night")
    assert night.start == datetime(2026, 11, 26, 16, tzinfo=timezone.utc)
    assert (night.end - night.start).total_seconds() == 8 * 3600
    assert night.kind == "production" and cal.parse("2026-11-27:day").kind == "maintenance"
    assert cal.at(datetime(2026, 11, 27, 1, tzinfo=timezone.utc)).id == "2026-11-27:day"
    assert cal.at_ns(night.start_ns).id == "2026-11-27:night"


def test_between_lists_every_overlapping_shift_in_order() -> None:
    cal = ShiftCalendar()
    a, b = cal.parse("2026-11-27:night"), cal.parse("2026-11-27:swing")
    got = cal.between(a.start, b.end)
    assert [s.id for s in got] == ["2026-11-27:night", "2026-11-27:day", "2026-11-27:swing"]


def test_custom_four_by_six_pattern_crossing_midnight() -> None:
    cal = ShiftCalendar(parse_shifts("a@07:00-13:00/production,b@13:00-19:00/production,"
                                     "c@19:00-01:00/maintenance,d@01:00-07:00/production"), tz_offset_h=0)
    c = cal.parse("2026-01-01:c")
    assert c.start.hour == 19 and c.end.day == 2 and c.end.hour == 1
    assert cal.at(datetime(2026, 1, 2, 0, 30, tzinfo=timezone.utc)).id == "2026-01-01:c"


@pytest.mark.parametrize("bad", ["2026-13-01:night", "2026-11-27", "2026-11-27:lunch"])
def test_bad_shift_ids_say_what_is_wrong(bad: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        ShiftCalendar().parse(bad)


# Some groups have dropped the 00-08 shift (domain §6): between the swing shift and the day
# shift no shift runs.
NO_NIGHT = "day@08:00-16:00/maintenance,swing@16:00-24:00/production"


def test_a_calendar_without_a_night_shift_has_a_gap_the_calendar_names() -> None:
    from minewatch.shifts import NoShiftError

    cal = ShiftCalendar(parse_shifts(NO_NIGHT))
    new_year = datetime(2026, 12, 31, 18, tzinfo=timezone.utc)  # 02:00 local on 1 January 2027
    with pytest.raises(NoShiftError, match="no shift"):
        cal.at(new_year)
    assert cal.gap(new_year) == (cal.parse("2026-12-31:swing").end, cal.parse("2027-01-01:day").start)
    assert cal.at(cal.parse("2027-01-01:day").start).id == "2027-01-01:day"
    assert [s.id for s in cal.between(new_year - (new_year - cal.parse("2026-12-31:day").start), new_year)] == [
        "2026-12-31:day", "2026-12-31:swing"]


@pytest.mark.parametrize("env, named", [
    ({"MINEWATCH_TZ_OFFSET": "abc"}, "MINEWATCH_TZ_OFFSET"),
    ({"MINEWATCH_TZ_OFFSET": "30"}, "MINEWATCH_TZ_OFFSET"),
    ({"MINEWATCH_TZ_OFFSET": "nan"}, "MINEWATCH_TZ_OFFSET"),
    ({"MINEWATCH_SHIFTS": "night@00:00-08:00"}, "MINEWATCH_SHIFTS"),
    ({"MINEWATCH_SHIFTS": "a@00:00-08:00/production,a@08:00-16:00/production"}, "MINEWATCH_SHIFTS"),
])
def test_a_bad_calendar_setting_is_an_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                                named: str) -> None:
    from minewatch.shifts import calendar_from_env

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=named):
        calendar_from_env()


@pytest.mark.parametrize("command", [["api", "--port", "1", "--mqtt-url", "mqtt://127.0.0.1:1"],
                                     ["report", "--shift", "2026-11-27:night", "--out", "r.html"],
                                     ["replay", "--shift", "2026-11-27:night"]])
def test_the_commands_with_a_calendar_refuse_a_bad_offset_without_a_traceback(tmp_path, command: list[str]) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, MINEWATCH_TZ_OFFSET="abc", MINEWATCH_ENV_FILE="")
    done = subprocess.run([sys.executable, "-m", "minewatch", *command, "--influx-url", "http://127.0.0.1:1"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "MINEWATCH_TZ_OFFSET='abc'" in done.stderr and "Traceback" not in done.stderr, done.stderr
