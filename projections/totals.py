"""Amounts given per local calendar day or clock hour, per drug and route, in mg.

Discrete doses count at their clinical time; rate segments are integrated over time and
split exactly at the day (or hour) boundaries of the patient's time zone, so a 23- or
25-hour day gets 23 or 25 hours of infusion. Sums use math.fsum: the result does not
depend on the order in which contributions are added, so one day computed alone (as the
incremental runner does) equals the same day computed with all the others.
"""
from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Iterable, NamedTuple, Sequence
from zoneinfo import ZoneInfo

from .timeline import US_PER_HOUR, clock, day_bounds, days_between, hour_slices, local_day


class Amount(NamedTuple):
    """One row of totals: a drug by a route over one day, or one clock hour of a day."""

    date: str
    hour: int | None  # local clock hour (None for a whole day)
    fold: int  # 1 for the repeated hour when the clocks go back, else 0
    start: int  # first instant of the day or hour (epoch microseconds)
    drug: str
    route: str
    amount_mg: float


# Inputs are plain tuples so that the runner can pass rows read back from its tables:
# a dose is (at, drug, route, mg); a segment is (start, end, drug, route, mg_per_h).
Dose = tuple[int, str, str, float]
Piece = tuple[int, "int | None", str, str, "float | None"]


def amounts(doses: Iterable[Dose], pieces: Iterable[Piece], tz: ZoneInfo, until: int | None,
            by: str = "day", first: date | None = None, last: date | None = None,
            parts: dict[tuple, list[float]] | None = None) -> list[Amount]:
    """Totals over local days [first, last] (all days with anything if not given).

    until: clinical time where counting stops: later doses are left out and running
    infusions (end None) are integrated up to it. None counts everything that has an end.
    Pieces without mg/h (a weight-based rate without a weight) are not counted; the
    caller reports them. `parts` may hold contributions already placed in their slots
    (slot key + (drug, route) -> mg), as a rebuild does with doses dated in SQL.
    """
    parts = {} if parts is None else parts
    lo = None if first is None else day_bounds(first, tz)[0]
    hi = None if last is None else day_bounds(last, tz)[1]
    local = clock(tz)
    hourly = by != "day"
    day_keys: dict[date, tuple] = {}
    for at, drug, route, mg in doses:
        if (until is not None and at > until) or (lo is not None and at < lo) or (hi is not None and at >= hi):
            continue
        if hourly:
            key = local.hour_slot(at)
        else:
            day = local.day(at)
            key = day_keys.get(day)
            if key is None:
                key = day_keys[day] = (day, None, 0, day_bounds(day, tz)[0])
        k = key + (drug, route)
        got = parts.get(k)
        if got is None:
            parts[k] = [mg]
        else:
            got.append(mg)
    for start, end, drug, route, mg_h in pieces:
        if mg_h is None:
            continue
        stop = end if until is None else (until if end is None else min(end, until))
        if stop is None:
            continue
        a = start if lo is None else max(start, lo)
        b = stop if hi is None else min(stop, hi)
        if b <= a:
            continue
        for key, overlap in _split(a, b, tz, by):
            parts.setdefault(key + (drug, route), []).append(mg_h * overlap / US_PER_HOUR)
    rows = [Amount(k[0].isoformat(), k[1], k[2], k[3], k[4], k[5], math.fsum(v))
            for k, v in parts.items()]
    rows.sort(key=lambda r: (r.start, r.drug, r.route))
    return [r for r in rows if r.amount_mg != 0]


def _split(a: int, b: int, tz: ZoneInfo, by: str):
    """(slot key, overlap in microseconds) of [a, b) with each local day or hour."""
    day = local_day(a, tz)
    while True:
        d0, d1 = day_bounds(day, tz)
        if d0 >= b:
            return
        if by == "day":
            overlap = min(b, d1) - max(a, d0)
            if overlap > 0:
                yield (day, None, 0, d0), overlap
        else:
            for hour, fold, h0, h1 in hour_slices(day, tz):
                overlap = min(b, h1) - max(a, h0)
                if overlap > 0:
                    yield (day, hour, fold, h0), overlap
        day += timedelta(days=1)


def course_inputs(course) -> tuple[list[Dose], list[Piece]]:
    """The totals inputs of a Course (projections.course)."""
    doses = [(a.at, a.drug, a.route, a.mg) for a in course.administrations]
    pieces = [(s.start, s.end, s.drug, s.route, s.mg_per_h) for s in course.segments]
    return doses, pieces


def days_touched(pieces: Sequence[Piece], doses: Sequence[Dose], tz: ZoneInfo,
                 until: int | None) -> set[date]:
    """Every local day that a dose or a segment (up to `until` when running) falls on."""
    days = {local_day(at, tz) for at, *_ in doses}
    for start, end, *_ in pieces:
        stop = end if end is not None else until
        if stop is None or stop <= start:
            continue
        days.update(days_between(local_day(start, tz), local_day(stop - 1, tz)))
    return days
