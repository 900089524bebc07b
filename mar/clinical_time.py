"""Clinical time: aware datetimes, patient-local calendar days, exact day and hour slices."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc


def parse_instant(text: str) -> datetime:
    """Parse ISO 8601 with a UTC offset. A naive timestamp is a ValueError, never a guess."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp has no UTC offset")
    return value


def to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def iso(value: datetime) -> str:
    return value.isoformat()


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of a local calendar day (as UTC)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a local day in UTC; 23 or 25 hours long on DST changes."""
    return local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)


def local_day(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def hour_slices(day: date, tz: ZoneInfo) -> list[tuple[int, datetime, datetime]]:
    """The clock hours of a local day as (local hour, start UTC, end UTC).

    On the 25-hour day the repeated 1 o'clock hour appears twice (both labelled 1);
    on the 23-hour day the skipped hour is absent.
    """
    start, end = day_bounds(day, tz)
    slices = []
    t = start
    while t < end:
        nxt = min(t + timedelta(hours=1), end)
        slices.append((t.astimezone(tz).hour, t, nxt))
        t = nxt
    return slices
