"""The business calendar: SLA due times and timers counted in working time.

Rules (one of each, tested in tests/engine/timers/test_calendar.py):

* Working day: its ISO weekday is in ``working_days`` or it is a make-up day (China's 调休:
  a weekend day worked in exchange for a bridge day off, from ``make_up_days`` and from the
  ``holidays`` package's ``weekend_workdays``), and it is neither a public holiday of
  ``holiday_country``/``holiday_subdivision`` nor in ``extra_days_off``. A public holiday
  wins over a make-up day.
* Working time: the windows of a working day, in the calendar's zone, half-open (09:00 is
  working time, 12:00 is not). Windows are measured in real time, so a window spanning a
  DST change is an hour shorter or longer, as the people in it experience it.
* Durations (ISO 8601): ``PnW``, ``PnD``, ``PTnH``, ``PTnM``, ``PTnS`` and combinations such
  as ``P1DT4H``; a component may have a decimal fraction (``PT1.5H``). They are amounts of
  working time: one day (``P1D``) is one full working day, the sum of the windows (8 h by
  default, so ``P1DT4H`` is 12 working hours); one week (``P1W``) is as many working days as
  the calendar has working weekdays (5 by default). Years and months are refused: their
  length varies, and a business SLA is counted in weeks, days or hours. So is anything over
  10 000 working days (a typo, and a long walk through the calendar).
* ``add(start, d)`` is the earliest instant ``t >= start`` with ``elapsed(start, t) == d``:
  counting skips evenings, lunch, weekends and holidays, starts at the next working moment
  when ``start`` is outside working time, and a due time landing exactly on a window's end
  stays there (18:00, not 09:00 the next morning). A zero duration returns ``start``.
  The result is aware UTC, like every time the engine stores.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "config" / "calendar.toml"
ENV_VAR = "TRADEFLOW_CALENDAR"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KEYS = (
    "timezone",
    "working_hours",
    "working_days",
    "holidays",
    "subdivision",
    "days_off",
    "make_up_days",
)
# A calendar with no working day this long after a date is misconfigured; searching on
# would loop until date.max.
SEARCH_DAYS = 3 * 366
# A longer duration (some 40 years) is a typo in a diagram, not an SLA: refuse it rather
# than walk the calendar for minutes while creating a task.
MAX_WORKING_DAYS = 10_000
_DURATIONS_KEPT = 256

_DURATION = re.compile(
    r"P(?:(?P<Y>\d+(?:[.,]\d+)?)Y)?(?:(?P<MO>\d+(?:[.,]\d+)?)M)?(?:(?P<W>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<D>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(?P<H>\d+(?:[.,]\d+)?)H)?(?:(?P<MI>\d+(?:[.,]\d+)?)M)?(?:(?P<S>\d+(?:[.,]\d+)?)S)?)?"
)
_WINDOW = re.compile(r"\s*(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})\s*")
_MICROSECONDS = {"H": 3_600_000_000, "MI": 60_000_000, "S": 1_000_000}


@dataclass(frozen=True)
class BusinessCalendar:
    """Working days and hours of one office. Keep one instance: it caches holidays per year."""

    timezone: ZoneInfo = SHANGHAI
    working_hours: tuple[tuple[time, time], ...] = ((time(9), time(12)), (time(13), time(18)))
    working_days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    holiday_country: str | None = "CN"
    holiday_subdivision: str | None = None
    extra_days_off: frozenset[date] = frozenset()
    make_up_days: frozenset[date] = frozenset()
    # year -> one byte per day of the year, 1 for a working day; filled lazily, a year at a
    # time, so add() looks a day up without asking the holidays package again. Two threads
    # filling the same year at once only compute it twice.
    _years: dict[int, bytes] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _day: timedelta = field(default=timedelta(), init=False, repr=False, compare=False)
    # duration text -> working time: a diagram's few SLAs, parsed once (every new task
    # asks); bounded, as timer expressions may compute any number of texts
    _durations: dict[str, timedelta] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        # Messages name the config keys (see from_mapping), which the fields mirror.
        if not isinstance(self.timezone, ZoneInfo):
            raise ValueError(f"timezone: {self.timezone!r} is not a ZoneInfo")
        _check_windows(self.working_hours)
        if not self.working_days:
            raise ValueError("working_days: at least one working weekday is needed")
        if bad := sorted(d for d in self.working_days if d not in range(1, 8)):
            raise ValueError(f"working_days: {bad[0]!r} is not an ISO weekday (1=Mon..7=Sun)")
        _check_country(self.holiday_country, self.holiday_subdivision)
        if both := sorted(self.extra_days_off & self.make_up_days):
            raise ValueError(f"days_off and make_up_days both list {both[0].isoformat()}")
        for day in sorted(self.make_up_days):
            if day.isoweekday() in self.working_days:
                raise ValueError(
                    f"make_up_days: {day.isoformat()} is a {day.strftime('%A')}, "
                    "already a working day"
                )
        length = sum((_clock(e) - _clock(s) for s, e in self.working_hours), timedelta())
        object.__setattr__(self, "_day", length)

    @property
    def day_length(self) -> timedelta:
        """Working time in one working day (P1D): the sum of the windows."""
        return self._day

    def is_working_day(self, day: date) -> bool:
        table = self._years.get(day.year)
        if table is None:
            table = self._years[day.year] = self._year(day.year)
        return table[day.toordinal() - date(day.year, 1, 1).toordinal()] == 1

    def is_working_time(self, at: datetime) -> bool:
        moment = _utc(at, "at")
        day = moment.astimezone(self.timezone).date()
        return self.is_working_day(day) and any(
            opens <= moment < closes for opens, closes in self._windows(day)
        )

    def working_duration(self, duration: str) -> timedelta:
        """The working time an ISO 8601 duration stands for (P1D = day_length)."""
        found = self._durations.get(duration)
        if found is None:
            found = self._working_duration(duration)
            if len(self._durations) >= _DURATIONS_KEPT:
                self._durations.clear()
            self._durations[duration] = found
        return found

    def _working_duration(self, duration: str) -> timedelta:
        parts = _parse_duration(duration)
        days = parts.pop("W", Decimal(0)) * len(self.working_days) + parts.pop("D", Decimal(0))
        day_us = self.day_length // timedelta(microseconds=1)
        total = days * day_us + sum(value * _MICROSECONDS[k] for k, value in parts.items())
        if total > MAX_WORKING_DAYS * day_us:
            raise ValueError(f"{duration!r} is longer than {MAX_WORKING_DAYS} working days")
        return timedelta(microseconds=int(total.to_integral_value()))

    def add(self, start: datetime, duration: str) -> datetime:
        """When ``duration`` of working time after ``start`` runs out, in UTC."""
        remaining = self.working_duration(duration)
        moment = _utc(start, "start")
        if not remaining:
            return moment
        for day in self._working_days_from(moment.astimezone(self.timezone).date()):
            for opens, closes in self._windows(day):
                begin = max(opens, moment)
                if begin >= closes:
                    continue
                if remaining <= closes - begin:
                    return begin + remaining
                remaining -= closes - begin
        raise AssertionError("unreachable: _working_days_from never ends")  # pragma: no cover

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Working time from ``start`` to ``end``; negative if ``end`` comes first."""
        first, last = _utc(start, "start"), _utc(end, "end")
        if last < first:
            return -self.elapsed(last, first)
        total = timedelta()
        day = first.astimezone(self.timezone).date()
        last_day = last.astimezone(self.timezone).date()
        while day <= last_day:
            if self.is_working_day(day):
                for opens, closes in self._windows(day):
                    if min(closes, last) > max(opens, first):
                        total += min(closes, last) - max(opens, first)
            day += timedelta(days=1)
        return total

    def _working_days_from(self, day: date) -> Iterable[date]:
        idle = 0
        while True:
            if self.is_working_day(day):
                idle = 0
                yield day
            else:
                idle += 1
                if idle >= SEARCH_DAYS:
                    first = day - timedelta(days=idle - 1)
                    raise ValueError(
                        f"no working day in the {SEARCH_DAYS} days from {first}: "
                        "check working_days, holidays and days_off"
                    )
            day += timedelta(days=1)

    def _windows(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's windows as UTC instants: real time, right across DST changes."""
        zone = self.timezone
        return [(_at(day, start, zone), _at(day, end, zone)) for start, end in self.working_hours]

    def _year(self, year: int) -> bytes:
        off = {d for d in self.extra_days_off if d.year == year}
        on = {d for d in self.make_up_days if d.year == year}
        if self.holiday_country:
            # Next year too: its bridge days may be worked off on a weekend of this year.
            years = [y for y in (year, year + 1) if y <= date.max.year]
            known = holidays.country_holidays(
                self.holiday_country, subdiv=self.holiday_subdivision, years=years
            )
            off.update(d for d in known if d.year == year)
            on.update(d for d in known.weekend_workdays if d.year == year)
        first = date(year, 1, 1).toordinal()
        last = date(year, 12, 31).toordinal()
        table = bytearray(last - first + 1)
        for ordinal in range(first, last + 1):
            day = date.fromordinal(ordinal)
            weekday = day.isoweekday() in self.working_days
            table[ordinal - first] = (weekday or day in on) and day not in off
        return bytes(table)


def from_mapping(data: Mapping[str, Any]) -> BusinessCalendar:
    """A calendar from parsed TOML (see config/calendar.toml); ValueError names key and value.

    ``holidays`` omitted or false means no public holidays: a calendar for another country
    must not inherit China's by accident.
    """
    if unknown := sorted(set(data) - set(KEYS)):
        raise ValueError(f"unknown key {unknown[0]!r}; the keys are {', '.join(KEYS)}")
    options: dict[str, Any] = {}
    if "timezone" in data:
        options["timezone"] = _zone(data["timezone"])
    if "working_hours" in data:
        options["working_hours"] = _windows(data["working_hours"])
    if "working_days" in data:
        options["working_days"] = frozenset(
            _weekday(name) for name in _list(data["working_days"], "working_days")
        )
    country = data.get("holidays", False)
    if country is not False and not (isinstance(country, str) and country.strip()):
        raise ValueError(f"holidays: {country!r} is not a country code or false")
    options["holiday_country"] = country.strip().upper() if country else None
    subdivision = data.get("subdivision")
    if subdivision is not None and not isinstance(subdivision, str):
        raise ValueError(f"subdivision: {subdivision!r} is not a string")
    options["holiday_subdivision"] = subdivision
    for key, name in (("days_off", "extra_days_off"), ("make_up_days", "make_up_days")):
        if key in data:
            options[name] = frozenset(_date(value, key) for value in _list(data[key], key))
    return BusinessCalendar(**options)


def load_calendar(path: str | Path | None = None) -> BusinessCalendar:
    """The calendar at ``path``, else at $TRADEFLOW_CALENDAR, else the shipped one."""
    source = Path(path) if path is not None else Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)
    with source.open("rb") as file:
        try:
            return from_mapping(tomllib.load(file))
        except ValueError as exc:  # TOMLDecodeError is one too
            raise ValueError(f"{source}: {exc}") from None


def _parse_duration(text: str) -> dict[str, Decimal]:
    match = _DURATION.fullmatch(text.strip().upper()) if isinstance(text, str) else None
    found = match.groupdict() if match else {}
    parts = {k: Decimal(v.replace(",", ".")) for k, v in found.items() if v is not None}
    if not parts or (match and match.group().endswith("T")):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as PT8H, P2D or P1DT4H")
    if "Y" in parts or "MO" in parts:
        raise ValueError(
            f"{text!r}: years and months are not business durations (their length varies); "
            "use weeks, days, hours, minutes or seconds"
        )
    return parts


def _check_windows(windows: tuple[tuple[time, time], ...]) -> None:
    if not windows:
        raise ValueError("working_hours: at least one working window is needed")
    for start, end in windows:
        if not (isinstance(start, time) and isinstance(end, time)):
            raise ValueError(f"working_hours: {(start, end)!r} is not a pair of times")
        if start.tzinfo or end.tzinfo:
            raise ValueError(f"working_hours: {_span(start, end)} has a time zone; use timezone")
        if start >= end:
            raise ValueError(f"working_hours: {_span(start, end)} does not end after it starts")
    for (start, end), (next_start, next_end) in pairwise(windows):
        if next_start < end:
            raise ValueError(
                f"working_hours: {_span(next_start, next_end)} overlaps or comes before "
                f"{_span(start, end)}; windows must be sorted and must not overlap"
            )


def _check_country(country: str | None, subdivision: str | None) -> None:
    if country is None:
        if subdivision is not None:
            raise ValueError(f"subdivision: {subdivision!r} needs holidays = a country code")
        return
    try:
        holidays.country_holidays(country)
    except NotImplementedError:
        raise ValueError(
            f"holidays: {country!r} is not a country the holidays package knows"
        ) from None
    if subdivision is not None:
        try:
            holidays.country_holidays(country, subdiv=subdivision)
        except NotImplementedError:
            raise ValueError(
                f"subdivision: {subdivision!r} is not a subdivision of {country}"
            ) from None


def _zone(value: Any) -> ZoneInfo:
    try:
        if isinstance(value, str) and value:
            return ZoneInfo(value)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        pass
    raise ValueError(f"timezone: {value!r} is not a known time zone (such as Asia/Shanghai)")


def _windows(value: Any) -> tuple[tuple[time, time], ...]:
    windows = []
    for text in _list(value, "working_hours"):
        match = _WINDOW.fullmatch(text) if isinstance(text, str) else None
        try:
            if match is None:
                raise ValueError
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            windows.append((time(h1, m1), time(h2, m2)))
        except ValueError:
            raise ValueError(f"working_hours: {text!r} is not HH:MM-HH:MM") from None
    windows.sort()
    _check_windows(tuple(windows))
    return tuple(windows)


def _weekday(name: Any) -> int:
    if isinstance(name, str) and name.strip().lower() in WEEKDAYS:
        return WEEKDAYS.index(name.strip().lower()) + 1
    raise ValueError(f"working_days: {name!r} is not one of {', '.join(WEEKDAYS)}")


def _date(value: Any, key: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # a TOML date literal: 2026-12-31
    try:
        if isinstance(value, str):
            return date.fromisoformat(value.strip())
    except ValueError:
        pass
    raise ValueError(f"{key}: {value!r} is not a date (YYYY-MM-DD)")


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{key}: {value!r} is not a list")
    return value


def _span(start: time, end: time) -> str:
    return f"'{start:%H:%M}-{end:%H:%M}'"


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, zone).astimezone(UTC)


def _clock(moment: time) -> timedelta:
    return timedelta(
        hours=moment.hour,
        minutes=moment.minute,
        seconds=moment.second,
        microseconds=moment.microsecond,
    )


def _utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError(f"{name}: {moment!r} is not a timezone-aware datetime")
    return moment.astimezone(UTC)
