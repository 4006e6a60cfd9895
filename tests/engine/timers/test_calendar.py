"""engine/timers/calendar.py: SLA due times counted in working time, and the calendar's config.

Dates are real: 2026-11-23 is a Monday with no holiday that week, 2026-10-01..07 is China's
National Day week (worked off on Sunday 09-20 and Saturday 10-10), and Berlin's clocks go
forward on Sunday 2027-03-28.
"""

from __future__ import annotations

import timeit
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest

from engine.timers import BusinessCalendar, load_calendar
from engine.timers.calendar import DEFAULT_PATH, from_mapping

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
CAL = BusinessCalendar()


def sh(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


# --- counting working time on ordinary days ---------------------------------------------


def test_within_working_hours_the_due_time_is_the_same_day_and_utc() -> None:
    due = CAL.add(sh(2026, 11, 24, 10), "PT2H")  # Tuesday
    assert due == sh(2026, 11, 24, 12)
    assert due.tzinfo is UTC
    assert due == datetime(2026, 11, 24, 4, tzinfo=UTC)


def test_lunch_is_not_counted() -> None:
    assert CAL.add(sh(2026, 11, 24, 11), "PT2H") == sh(2026, 11, 24, 14)


def test_the_evening_and_weekend_are_skipped() -> None:
    # Friday 14:00: four hours on Friday, the other four on Monday (09-12, 13-14).
    assert CAL.add(sh(2026, 11, 27, 14), "PT8H") == sh(2026, 11, 30, 14)
    assert CAL.add(sh(2026, 11, 27, 17), "PT2H") == sh(2026, 11, 30, 10)


def test_a_due_time_on_a_window_end_stays_there() -> None:
    assert CAL.add(sh(2026, 11, 24, 11), "PT1H") == sh(2026, 11, 24, 12)  # not 13:00
    assert CAL.add(sh(2026, 11, 24, 9), "P1D") == sh(2026, 11, 24, 18)  # not 09:00 next day
    assert CAL.add(sh(2026, 11, 27, 17), "PT1H") == sh(2026, 11, 27, 18)  # not Monday


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (sh(2026, 11, 28, 22), sh(2026, 11, 30, 10)),  # Saturday night -> Monday
        (sh(2026, 11, 24, 7), sh(2026, 11, 24, 10)),  # before opening
        (sh(2026, 11, 24, 12, 30), sh(2026, 11, 24, 14)),  # at lunch
        (sh(2026, 11, 24, 19), sh(2026, 11, 25, 10)),  # after closing
    ],
)
def test_a_start_outside_working_hours_counts_from_the_next_working_moment(
    start: datetime, expected: datetime
) -> None:
    assert CAL.add(start, "PT1H") == expected


@pytest.mark.parametrize("zero", ["PT0S", "P0D", "PT0H", "P0W"])
def test_a_zero_duration_is_due_at_the_start(zero: str) -> None:
    saturday_night = sh(2026, 11, 28, 22)
    assert CAL.add(saturday_night, zero) == saturday_night
    assert CAL.add(saturday_night, zero).tzinfo is UTC


def test_minutes_seconds_and_fractions() -> None:
    assert CAL.add(sh(2026, 11, 24, 17, 59), "PT2M") == sh(2026, 11, 25, 9, 1)
    assert CAL.add(sh(2026, 11, 24, 10), "PT30M") == sh(2026, 11, 24, 10, 30)
    assert CAL.add(sh(2026, 11, 24, 11, 59), "PT90S") == sh(2026, 11, 24, 13, 0, 30)
    assert CAL.add(sh(2026, 11, 24, 10), "PT1H30M15S") == sh(2026, 11, 24, 11, 30, 15)
    assert CAL.add(sh(2026, 11, 24, 10), "PT1.5H") == sh(2026, 11, 24, 11, 30)
    assert CAL.add(sh(2026, 11, 24, 10), "pt1,5h") == sh(2026, 11, 24, 11, 30)


# --- days and weeks are working time ---------------------------------------------------


def test_a_day_is_one_full_working_day_of_working_time() -> None:
    assert CAL.day_length == timedelta(hours=8)
    assert CAL.working_duration("P1D") == timedelta(hours=8)
    assert CAL.working_duration("P1DT4H") == timedelta(hours=12)
    assert CAL.add(sh(2026, 11, 24, 10), "P1D") == sh(2026, 11, 25, 10)
    assert CAL.add(sh(2026, 11, 24, 9), "P1DT4H") == sh(2026, 11, 25, 14)
    assert CAL.add(sh(2026, 11, 23, 10), "P3D") == sh(2026, 11, 26, 10)


def test_the_day_follows_the_windows() -> None:
    short = BusinessCalendar(working_hours=((time(9), time(12)),), holiday_country=None)
    assert short.working_duration("P1D") == timedelta(hours=3)
    assert short.add(sh(2026, 11, 24, 10), "P1D") == sh(2026, 11, 25, 10)


def test_a_week_is_as_many_working_days_as_the_calendar_has_working_weekdays() -> None:
    assert CAL.working_duration("P1W") == CAL.working_duration("P5D")
    assert CAL.add(sh(2026, 11, 23, 10), "P1W") == sh(2026, 11, 30, 10)
    six_days = BusinessCalendar(working_days=frozenset(range(1, 7)), holiday_country=None)
    assert six_days.add(sh(2026, 11, 23, 10), "P1W") == sh(2026, 11, 30, 10)
    assert six_days.add(sh(2026, 11, 23, 10), "P5D") == sh(2026, 11, 28, 10)  # Saturday


# --- holidays, make-up days and days off ------------------------------------------------


def test_public_holidays_on_weekdays_are_days_off() -> None:
    assert CAL.is_working_day(date(2026, 9, 30))
    assert not CAL.is_working_day(date(2026, 10, 1))  # National Day, a Thursday
    assert not CAL.is_working_day(date(2026, 10, 5))  # a Monday, observed
    assert not CAL.is_working_day(date(2026, 10, 7))  # a Wednesday, worked off on 10-10
    assert CAL.is_working_day(date(2026, 10, 8))
    assert BusinessCalendar(holiday_country=None).is_working_day(date(2026, 10, 1)) is not False


def test_a_task_created_before_national_day_is_due_after_it() -> None:
    # Wednesday 16:00: two hours that day, six after the week off (Thursday 10-08).
    assert CAL.add(sh(2026, 9, 30, 16), "P1D") == sh(2026, 10, 8, 16)
    assert CAL.add(sh(2026, 9, 30, 16), "PT2H") == sh(2026, 9, 30, 18)


def test_a_due_time_spanning_a_holiday_skips_it() -> None:
    # Dragon Boat Festival: Friday 2026-06-19.
    assert CAL.add(sh(2026, 6, 18, 10), "P1D") == sh(2026, 6, 22, 10)
    assert BusinessCalendar(holiday_country=None).add(sh(2026, 6, 18, 10), "P1D") == sh(
        2026, 6, 19, 10
    )


def test_make_up_days_from_the_holidays_package_are_working_days() -> None:
    assert {date(2026, 9, 20), date(2026, 10, 10)} <= holidays.country_holidays(
        "CN", years=2026
    ).weekend_workdays
    assert date(2026, 10, 10).isoweekday() == 6
    assert CAL.is_working_day(date(2026, 10, 10))
    assert CAL.is_working_day(date(2026, 9, 20))  # a Sunday
    assert not CAL.is_working_day(date(2026, 10, 17))  # an ordinary Saturday
    # Friday 16:00: two hours on Friday, two on Saturday's make-up day.
    assert CAL.add(sh(2026, 10, 9, 16), "PT4H") == sh(2026, 10, 10, 11)


def test_make_up_days_from_config() -> None:
    cal = from_mapping({"holidays": "CN", "make_up_days": ["2026-11-28"]})
    assert cal.is_working_day(date(2026, 11, 28))
    assert cal.add(sh(2026, 11, 27, 17), "PT2H") == sh(2026, 11, 28, 10)
    assert CAL.add(sh(2026, 11, 27, 17), "PT2H") == sh(2026, 11, 30, 10)


def test_a_public_holiday_wins_over_a_make_up_day() -> None:
    cal = BusinessCalendar(make_up_days=frozenset({date(2026, 10, 3)}))  # Saturday, National Day
    assert not cal.is_working_day(date(2026, 10, 3))
    assert BusinessCalendar(
        holiday_country=None, make_up_days=frozenset({date(2026, 10, 3)})
    ).is_working_day(date(2026, 10, 3))


def test_extra_days_off_from_config() -> None:
    cal = from_mapping({"holidays": "CN", "days_off": ["2026-11-26"]})  # a Thursday
    assert not cal.is_working_day(date(2026, 11, 26))
    assert cal.add(sh(2026, 11, 25, 17), "PT2H") == sh(2026, 11, 27, 10)
    assert CAL.add(sh(2026, 11, 25, 17), "PT2H") == sh(2026, 11, 26, 10)


def test_a_day_off_wins_over_a_make_up_day_of_the_package() -> None:
    cal = BusinessCalendar(extra_days_off=frozenset({date(2026, 10, 10)}))
    assert not cal.is_working_day(date(2026, 10, 10))


def test_subdivision_holidays() -> None:
    epiphany = date(2026, 1, 6)  # a Tuesday; a holiday in Bavaria, not in Berlin
    bavaria = BusinessCalendar(timezone=BERLIN, holiday_country="DE", holiday_subdivision="BY")
    berlin_cal = BusinessCalendar(timezone=BERLIN, holiday_country="DE", holiday_subdivision="BE")
    assert not bavaria.is_working_day(epiphany)
    assert berlin_cal.is_working_day(epiphany)


def test_holidays_are_looked_up_once_per_year_and_only_when_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[object] = []
    real = holidays.country_holidays

    def counting(*args: object, **kwargs: object) -> holidays.HolidayBase:
        calls.append(kwargs.get("years"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(holidays, "country_holidays", counting)
    cal = BusinessCalendar()
    checked = len(calls)  # validating the country
    for offset in range(200):
        cal.is_working_day(date(2026, 1, 1) + timedelta(days=offset))
    # The next year too: the package files a weekend worked off for next year's holiday
    # (a make-up day late in December) under that next year.
    assert calls[checked:] == [[2026, 2027]]
    cal.is_working_day(date(2027, 1, 1))
    assert calls[checked:] == [[2026, 2027], [2027, 2028]]


# --- time zones and DST ---------------------------------------------------------------------


def test_the_same_instant_falls_due_by_each_office_s_own_hours() -> None:
    start = datetime(2026, 11, 24, 6, tzinfo=UTC)  # 14:00 in Shanghai, 07:00 in Berlin
    berlin_cal = BusinessCalendar(timezone=BERLIN, holiday_country=None)
    assert CAL.add(start, "PT2H") == datetime(2026, 11, 24, 8, tzinfo=UTC)  # 16:00 there
    assert berlin_cal.add(start, "PT2H") == datetime(2026, 11, 24, 10, tzinfo=UTC)  # 11:00 CET
    assert CAL.add(start, "PT5H") == datetime(2026, 11, 25, 2, tzinfo=UTC)  # 10:00 next day


def test_hours_after_a_dst_change_are_local_office_hours() -> None:
    # Friday 16:00 CET: two hours that day; Monday after the clocks went forward, 09:00 is
    # 07:00 UTC (it was 08:00 UTC on Friday).
    cal = BusinessCalendar(timezone=BERLIN, holiday_country=None)
    due = cal.add(berlin(2027, 3, 26, 16), "PT4H")
    assert due == berlin(2027, 3, 29, 11) == datetime(2027, 3, 29, 9, tzinfo=UTC)
    assert cal.elapsed(berlin(2027, 3, 26, 16), due) == timedelta(hours=4)
    assert cal.elapsed(berlin(2027, 3, 26, 0), berlin(2027, 3, 30, 0)) == timedelta(hours=16)


def test_a_window_across_a_dst_change_counts_real_time() -> None:
    night = BusinessCalendar(
        timezone=BERLIN,
        working_hours=((time(1), time(4)),),
        working_days=frozenset(range(1, 8)),
        holiday_country=None,
    )
    assert night.elapsed(berlin(2027, 3, 28), berlin(2027, 3, 29)) == timedelta(hours=2)
    assert night.elapsed(berlin(2027, 10, 31), berlin(2027, 11, 1)) == timedelta(hours=4)
    assert night.add(berlin(2027, 3, 28, 1), "PT3H") == berlin(2027, 3, 29, 2)


def test_the_local_date_is_the_office_s_not_utc_s() -> None:
    # 16:30 in Los Angeles on Tuesday is already Wednesday in UTC.
    la = BusinessCalendar(timezone=ZoneInfo("America/Los_Angeles"), holiday_country=None)
    start = datetime(2026, 11, 24, 16, 30, tzinfo=la.timezone)
    assert la.is_working_time(start)
    assert la.add(start, "PT1H") == datetime(2026, 11, 24, 17, 30, tzinfo=la.timezone)
    assert la.elapsed(start, start + timedelta(hours=1)) == timedelta(hours=1)
    # 07:00 in Shanghai is still the day before in UTC.
    early = BusinessCalendar(working_hours=((time(6), time(10)),), holiday_country=None)
    assert early.elapsed(sh(2026, 11, 23, 12), sh(2026, 11, 24, 7)) == timedelta(hours=1)


def test_aware_starts_in_any_zone_are_the_same_instant() -> None:
    start = sh(2026, 11, 24, 10)
    assert CAL.add(start.astimezone(BERLIN), "PT2H") == CAL.add(start, "PT2H")


# --- working time and elapsed --------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "working"),
    [
        (sh(2026, 11, 24, 9), True),
        (sh(2026, 11, 24, 8, 59, 59), False),
        (sh(2026, 11, 24, 11, 59, 59), True),
        (sh(2026, 11, 24, 12), False),
        (sh(2026, 11, 24, 13), True),
        (sh(2026, 11, 24, 18), False),
        (sh(2026, 11, 28, 10), False),  # Saturday
        (sh(2026, 10, 1, 10), False),  # National Day
        (sh(2026, 10, 10, 10), True),  # make-up Saturday
        (datetime(2026, 11, 24, 2, tzinfo=UTC), True),  # 10:00 in Shanghai
    ],
)
def test_is_working_time(at: datetime, working: bool) -> None:
    assert CAL.is_working_time(at) is working


@pytest.mark.parametrize(
    ("start", "duration"),
    [
        (sh(2026, 11, 24, 10), "PT2H"),
        (sh(2026, 11, 27, 14), "PT8H"),
        (sh(2026, 9, 30, 16), "P1D"),
        (sh(2026, 11, 28, 22), "P1DT4H"),
        (sh(2026, 11, 24, 12, 30), "PT45M"),
        (sh(2026, 2, 13, 11), "P2W"),  # across the Spring Festival and its make-up days
    ],
)
def test_elapsed_is_the_inverse_of_add(start: datetime, duration: str) -> None:
    due = CAL.add(start, duration)
    assert CAL.elapsed(start, due) == CAL.working_duration(duration)
    assert CAL.elapsed(due, start) == -CAL.working_duration(duration)


def test_elapsed_counts_only_working_time() -> None:
    assert CAL.elapsed(sh(2026, 11, 27, 18), sh(2026, 11, 30, 9)) == timedelta()
    assert CAL.elapsed(sh(2026, 11, 23), sh(2026, 11, 30)) == timedelta(hours=40)
    assert CAL.elapsed(sh(2026, 11, 24, 11), sh(2026, 11, 24, 14)) == timedelta(hours=2)


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", ["P1M", "P1Y", "P1Y2D", "P2MT1H"])
def test_years_and_months_are_refused(duration: str) -> None:
    with pytest.raises(ValueError, match="years and months are not business durations"):
        CAL.add(sh(2026, 11, 24, 10), duration)


@pytest.mark.parametrize("duration", ["", "garbage", "P", "PT", "P1DT", "8H", "-PT1H", "PT1H2H"])
def test_garbage_durations_are_refused(duration: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 duration"):
        CAL.add(sh(2026, 11, 24, 10), duration)


def test_absurdly_long_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="'P10001D' is longer than 10000 working days"):
        CAL.add(sh(2026, 11, 24, 10), "P10001D")
    with pytest.raises(ValueError, match="longer than 10000 working days"):
        CAL.working_duration("PT" + "9" * 400 + "H")
    assert CAL.add(sh(2026, 11, 24, 10), "P10000D") > sh(2060, 1, 1)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 11, 24, 10)
    with pytest.raises(ValueError, match=r"start: .* is not a timezone-aware datetime"):
        CAL.add(naive, "PT1H")
    with pytest.raises(ValueError, match=r"end: .* is not a timezone-aware datetime"):
        CAL.elapsed(sh(2026, 11, 24, 10), naive)
    with pytest.raises(ValueError, match=r"at: .* is not a timezone-aware datetime"):
        CAL.is_working_time(naive)


def test_a_calendar_without_working_days_stops_searching() -> None:
    mondays = frozenset(date(2026, 1, 5) + timedelta(weeks=n) for n in range(52 * 5))
    cal = BusinessCalendar(
        working_days=frozenset({1}), holiday_country=None, extra_days_off=mondays
    )
    with pytest.raises(ValueError, match="no working day in the 1098 days from 2026-01-01"):
        cal.add(sh(2026, 1, 1, 10), "PT1H")


def test_a_long_sla_is_not_mistaken_for_a_dead_calendar() -> None:
    assert CAL.add(sh(2026, 1, 5, 9), "P800D") > sh(2029, 1, 1)


# --- cost --------------------------------------------------------------------------------


@pytest.mark.parametrize("duration", ["PT8H", "P3D", "P5D"])
def test_add_costs_well_under_a_millisecond(duration: str) -> None:
    start = sh(2026, 11, 24, 10)
    CAL.add(start, duration)  # the year's holidays, once
    runs = 200
    assert timeit.timeit(lambda: CAL.add(start, duration), number=runs) / runs < 0.001


# --- config -------------------------------------------------------------------------------


def test_the_shipped_config_is_the_default_calendar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEFLOW_CALENDAR", raising=False)
    assert DEFAULT_PATH.is_file()
    assert load_calendar() == BusinessCalendar()
    assert load_calendar(DEFAULT_PATH) == BusinessCalendar()
    assert load_calendar().add(sh(2026, 9, 30, 16), "P1D") == sh(2026, 10, 8, 16)


def test_a_full_config(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text(
        'timezone = "Europe/Berlin"\n'
        'working_hours = ["13:00-17:00", "08:00-12:00"]\n'
        'working_days = ["Mon", "tue", "wed", "thu"]\n'
        'holidays = "de"\n'
        'subdivision = "BY"\n'
        'days_off = [2026-12-31, "2026-12-30"]\n'
        'make_up_days = ["2026-12-05"]\n'
    )
    assert load_calendar(path) == BusinessCalendar(
        timezone=BERLIN,
        working_hours=((time(8), time(12)), (time(13), time(17))),
        working_days=frozenset({1, 2, 3, 4}),
        holiday_country="DE",
        holiday_subdivision="BY",
        extra_days_off=frozenset({date(2026, 12, 30), date(2026, 12, 31)}),
        make_up_days=frozenset({date(2026, 12, 5)}),
    )


def test_omitted_keys_take_the_defaults_but_holidays_omitted_means_none() -> None:
    cal = from_mapping({})
    assert cal == BusinessCalendar(holiday_country=None)
    assert cal.is_working_day(date(2026, 10, 1))
    assert from_mapping({"holidays": False}) == cal


def test_the_environment_names_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "berlin.toml"
    path.write_text('timezone = "Europe/Berlin"\nholidays = false\n')
    monkeypatch.setenv("TRADEFLOW_CALENDAR", str(path))
    assert load_calendar().timezone == BERLIN
    assert load_calendar(DEFAULT_PATH).timezone == SHANGHAI  # an argument wins


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_calendar(tmp_path / "nowhere.toml")


def test_a_config_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text('working_hours = ["9-5"]\n')
    with pytest.raises(
        ValueError, match=r"calendar\.toml: working_hours: '9-5' is not HH:MM-HH:MM"
    ):
        load_calendar(path)
    path.write_text("timezone = \n")
    with pytest.raises(ValueError, match=r"calendar\.toml: "):
        load_calendar(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"timezone": "Mars/Base"}, "timezone: 'Mars/Base' is not a known time zone"),
        ({"timezone": "Asia"}, "timezone: 'Asia' is not a known time zone"),
        ({"timezone": 8}, "timezone: 8 is not a known time zone"),
        ({"working_hours": ["9-5"]}, "working_hours: '9-5' is not HH:MM-HH:MM"),
        ({"working_hours": ["25:00-26:00"]}, "working_hours: '25:00-26:00' is not HH:MM-HH:MM"),
        ({"working_hours": [9]}, "working_hours: 9 is not HH:MM-HH:MM"),
        ({"working_hours": "09:00-18:00"}, "working_hours: '09:00-18:00' is not a list"),
        ({"working_hours": []}, "working_hours: at least one working window is needed"),
        (
            {"working_hours": ["18:00-09:00"]},
            "working_hours: '18:00-09:00' does not end after it starts",
        ),
        (
            {"working_hours": ["09:00-12:00", "11:30-18:00"]},
            "working_hours: '11:30-18:00' overlaps or comes before '09:00-12:00'",
        ),
        ({"working_days": ["monday"]}, "working_days: 'monday' is not one of mon, tue"),
        ({"working_days": []}, "working_days: at least one working weekday is needed"),
        ({"holidays": "XX"}, "holidays: 'XX' is not a country the holidays package knows"),
        ({"holidays": True}, "holidays: True is not a country code or false"),
        ({"holidays": ""}, "holidays: '' is not a country code or false"),
        (
            {"holidays": "DE", "subdivision": "ZZ"},
            "subdivision: 'ZZ' is not a subdivision of DE",
        ),
        ({"subdivision": "BY"}, "subdivision: 'BY' needs holidays = a country code"),
        ({"days_off": ["2026-13-01"]}, r"days_off: '2026-13-01' is not a date \(YYYY-MM-DD\)"),
        (
            {"days_off": [datetime(2026, 12, 31, 9)]},
            r"days_off: datetime.datetime\(2026, 12, 31, 9, 0\) is not a date",
        ),
        ({"make_up_days": "2026-10-10"}, "make_up_days: '2026-10-10' is not a list"),
        (
            {"make_up_days": ["2026-10-12"]},
            "make_up_days: 2026-10-12 is a Monday, already a working day",
        ),
        (
            {"days_off": ["2026-11-28"], "make_up_days": ["2026-11-28"]},
            "days_off and make_up_days both list 2026-11-28",
        ),
        ({"timezon": "UTC"}, "unknown key 'timezon'; the keys are timezone, working_hours"),
    ],
)
def test_config_errors_name_the_key_and_the_value(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_mapping(data)


def test_the_dataclass_checks_its_fields_too() -> None:
    with pytest.raises(ValueError, match="windows must be sorted and must not overlap"):
        BusinessCalendar(working_hours=((time(13), time(18)), (time(9), time(12))))
    with pytest.raises(ValueError, match="working_days: 8 is not an ISO weekday"):
        BusinessCalendar(working_days=frozenset({1, 8}))
    with pytest.raises(ValueError, match="working_days: at least one"):
        BusinessCalendar(working_days=frozenset())
    with pytest.raises(ValueError, match="holidays: 'cn' is not a country"):
        BusinessCalendar(holiday_country="cn")


def test_calendars_are_values() -> None:
    cal = BusinessCalendar()
    cal.is_working_day(date(2026, 10, 1))  # fills the holiday cache
    assert cal == BusinessCalendar()
    assert hash(cal) == hash(BusinessCalendar())
    with pytest.raises(AttributeError):
        cal.timezone = BERLIN  # type: ignore[misc]


def test_parsed_durations_are_kept_and_their_number_bounded() -> None:
    """Each new task's SLA is parsed once per text; timer expressions may compute any
    number of texts, which must not grow the cache without end."""
    cal = BusinessCalendar(holiday_country=None)
    assert cal.working_duration("PT8H") == timedelta(hours=8)
    assert cal.working_duration("PT8H") is cal.working_duration("PT8H")  # kept
    for minutes in range(1, 1000):
        assert cal.working_duration(f"PT{minutes}M") == timedelta(minutes=minutes)
    assert 0 < len(cal._durations) <= 256
    with pytest.raises(ValueError):
        cal.working_duration("P1M")  # refused every time, never kept
    assert "P1M" not in cal._durations
