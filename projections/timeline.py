"""Instants as integer microseconds since the Unix epoch (UTC), and the patient's local days.

Integers keep interval arithmetic exact: an amount integrated over a day is the same
number whether the day is computed alone (incremental catch-up) or with all the others
(full rebuild).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
US_PER_HOUR = 3_600_000_000


def instant(text: str) -> int:
    """ISO 8601 with offset -> epoch microseconds. Naive text is a ValueError (never guessed)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return (value - EPOCH) // ONE_US


def parse_time(text: str, tz: ZoneInfo | None = None) -> int:
    """A user-given time: ISO 8601 with offset, or a naive local time in the patient's zone."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        if tz is None:
            raise ValueError(f"time {text!r} has no UTC offset and the patient has no time zone")
        value = value.replace(tzinfo=tz)
    return (value - EPOCH) // ONE_US


def to_datetime(us: int, tz: ZoneInfo | timezone = UTC) -> datetime:
    return (EPOCH + timedelta(microseconds=us)).astimezone(tz)


def iso(us: int | None, tz: ZoneInfo | timezone = UTC) -> str | None:
    return None if us is None else to_datetime(us, tz).isoformat()


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=200_000)
def day_start(day: date, tz: ZoneInfo) -> int:
    """The first instant of a local calendar day, in epoch microseconds."""
    return (datetime(day.year, day.month, day.day, tzinfo=tz) - EPOCH) // ONE_US


def day_bounds(day: date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) of a local day: 23 or 25 hours long on daylight-saving changes."""
    return day_start(day, tz), day_start(day + timedelta(days=1), tz)


def local_day(us: int, tz: ZoneInfo) -> date:
    return to_datetime(us, tz).date()


@lru_cache(maxsize=50_000)
def hour_slices(day: date, tz: ZoneInfo) -> tuple[tuple[int, int, int, int], ...]:
    """The clock hours of a local day as (hour, fold, start, end) in epoch microseconds.

    On the 25-hour day the repeated hour appears twice (fold 0, then fold 1); on the
    23-hour day the skipped hour is absent. Zones with half-hour offsets still get
    60-minute local hours.
    """
    start, end = day_bounds(day, tz)
    out = []
    t = start
    while t < end:
        local = to_datetime(t, tz)
        nxt = min(t + US_PER_HOUR - (local.minute * 60 + local.second) * 1_000_000 - local.microsecond, end)
        out.append((local.hour, local.fold, t, nxt))
        t = nxt
    return tuple(out)


def days_between(first: date, last: date):
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)
