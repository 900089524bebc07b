"""Instants as integer microseconds since the Unix epoch (UTC), and the patient's local days.

Integers keep interval arithmetic exact: an amount integrated over a day is the same
number whether the day is computed alone (incremental catch-up) or with all the others
(full rebuild).
"""
from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_NAIVE = datetime(1970, 1, 1)
ONE_US = timedelta(microseconds=1)
US_PER_HOUR = 3_600_000_000


def _instant(text: str) -> int:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return (value - EPOCH) // ONE_US


_HOUR_BASE: dict[str, int] = {}


def instant(text: str) -> int:
    """ISO 8601 with offset -> epoch microseconds. Naive text is a ValueError (never guessed).

    The common stored shape, YYYY-MM-DDTHH:MM:SS+HH:MM, is read through a cache of whole
    hours: parsing every timestamp fully is a large share of a rebuild.
    """
    if len(text) == 25 and text[19] in "+-" and text[13] == ":" and text[16] == ":":
        key = text[:13] + text[19:]
        base = _HOUR_BASE.get(key)
        if base is None:
            if len(_HOUR_BASE) > 500_000:
                _HOUR_BASE.clear()
            base = _HOUR_BASE[key] = _instant(text[:13] + ":00:00" + text[19:])
        return base + int(text[14:16]) * 60_000_000 + int(text[17:19]) * 1_000_000
    return _instant(text)


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
    if us is None:
        return None
    if isinstance(tz, ZoneInfo):
        return clock(tz).iso(us)
    return to_datetime(us, tz).isoformat()


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


QUARTER_US = 900_000_000
DAY_US = 86_400_000_000
EPOCH_DATE = date(1970, 1, 1)


class LocalClock:
    """Fast local calendar arithmetic for one time zone, exact on every offset change.

    UTC offsets are cached per quarter hour of UTC (every modern offset change falls on a
    quarter hour); a quarter hour whose two ends differ is never cached.
    """

    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self._offsets: dict[int, int] = {}
        self._dates: dict[int, date] = {}
        self._hours: dict[date, tuple] = {}
        self._day_offsets: dict[int, int] = {}
        self._suffixes: dict[int, str] = {}
        self._day_texts: dict[int, str] = {}

    def offset(self, us: int) -> int:
        d = us // DAY_US
        off = self._day_offsets.get(d)
        if off is not None:
            return off
        q = us // QUARTER_US
        off = self._offsets.get(q)
        if off is None:
            off = self._exact(us)
            if d not in self._day_offsets and self._exact(d * DAY_US) == self._exact((d + 1) * DAY_US - 1) == off:
                self._day_offsets[d] = off  # no change in this UTC day (checked at both ends)
                return off
            start = q * QUARTER_US
            if self._exact(start) == self._exact(start + QUARTER_US - 1) == off:
                self._offsets[q] = off
        return off

    def iso(self, us: int) -> str:
        """Local ISO 8601 with offset, as datetime.isoformat() writes it (a rebuild writes
        tens of thousands: the date and the clock time come from small caches)."""
        off = self.offset(us)
        suffix = self._suffixes.get(off)
        if suffix is None:
            suffix = self._suffixes[off] = to_datetime(us, self.tz).isoformat()[19 + (7 if us % 1_000_000 else 0):]
        n, rem = divmod(us + off, DAY_US)
        day = self._day_texts.get(n)
        if day is None:
            day = self._day_texts[n] = (EPOCH_DATE + timedelta(days=n)).isoformat() + "T"
        seconds, fraction = divmod(rem, 1_000_000)
        clock_time = _CLOCK_TEXTS.get(seconds)
        if clock_time is None:
            clock_time = _CLOCK_TEXTS[seconds] = "%02d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)
        if fraction:
            return day + clock_time + ".%06d" % fraction + suffix
        return day + clock_time + suffix

    def _exact(self, us: int) -> int:
        return to_datetime(us, self.tz).utcoffset() // ONE_US

    def day(self, us: int) -> date:
        n = (us + self.offset(us)) // DAY_US
        d = self._dates.get(n)
        if d is None:
            d = self._dates[n] = EPOCH_DATE + timedelta(days=n)
        return d

    def day_hour(self, us: int) -> tuple[date, int]:
        """The local date and clock hour (0-23) of an instant."""
        local = us + self.offset(us)
        n = local // DAY_US
        d = self._dates.get(n)
        if d is None:
            d = self._dates[n] = EPOCH_DATE + timedelta(days=n)
        return d, (local % DAY_US) // 3_600_000_000

    def hour_slot(self, us: int) -> tuple[date, int, int, int]:
        """(local date, hour, fold, start) of the local clock hour holding an instant."""
        d = self.day(us)
        hours = self._hours.get(d)
        if hours is None:
            slices = hour_slices(d, self.tz)
            hours = self._hours[d] = (tuple(s[2] for s in slices), slices)
        hour, fold, start, _ = hours[1][bisect_right(hours[0], us) - 1]
        return d, hour, fold, start


_CLOCK_TEXTS: dict[int, str] = {}  # seconds of the day -> "HH:MM:SS"


def offset_spans(tz: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """(start, end, UTC offset) of the offsets in force over [lo, hi] (microseconds), the
    first from lo and the last to hi + 1: the offsets LocalClock gives. Like LocalClock, it
    takes a UTC day whose two ends have one offset to have it throughout; where they differ,
    each change is found by bisection (to the microsecond)."""
    exact = clock(tz)._exact
    spans: list[tuple[int, int, int]] = []
    start = known = lo  # known: the latest instant seen to have `off`
    off = exact(lo)
    d = lo // DAY_US
    while d * DAY_US <= hi:
        b = min((d + 1) * DAY_US - 1, hi)
        while exact(b) != off:
            x, y = known, b  # exact(x) == off != exact(y): the change is in (x, y]
            while y - x > 1:
                mid = (x + y) // 2
                if exact(mid) == off:
                    x = mid
                else:
                    y = mid
            spans.append((start, y, off))
            start = known = y
            off = exact(y)
        known = b
        d += 1
    spans.append((start, hi + 1, off))
    return spans


@lru_cache(maxsize=256)
def clock(tz: ZoneInfo) -> LocalClock:
    return LocalClock(tz)


def local_day(us: int, tz: ZoneInfo) -> date:
    return clock(tz).day(us)


@lru_cache(maxsize=50_000)
def hour_slices(day: date, tz: ZoneInfo) -> tuple[tuple[int, int, int, int], ...]:
    """The clock hours of a local day as (hour, fold, start, end) in epoch microseconds.

    On the 25-hour day the repeated hour appears twice (fold 0, then fold 1); on the
    23-hour day the skipped hour is absent. Zones with half-hour offsets still get
    60-minute local hours; an offset change in the middle of a local hour (some zones
    changed at 00:01) ends the slice there, so every slice is one local hour label.
    """
    start, end = day_bounds(day, tz)
    out = []
    t = start
    while t < end:
        off = _offset(t, tz)
        nxt = min(t + US_PER_HOUR - (t + off) % US_PER_HOUR, end)
        if _offset(nxt - 1, tz) != off:
            a, b = t, nxt - 1  # offset(a) is off, offset(b) is not: find the change
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(mid, tz) == off:
                    a = mid
                else:
                    b = mid
            nxt = b
        local = to_datetime(t, tz)
        out.append((local.hour, local.fold, t, nxt))
        t = nxt
    return tuple(out)


def _offset(us: int, tz: ZoneInfo) -> int:
    return to_datetime(us, tz).utcoffset() // ONE_US


def days_between(first: date, last: date):
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)
