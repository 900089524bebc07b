"""Administered opioid use in MME: per local day, over a window, and the instant a day's
running total reached a level. Read from the course: doses given and rate segments
(infusions, PCA basal), the same inputs as `mar totals`.

Opioids without a factor in the table (buprenorphine) add nothing; the day lists them.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from mar.units import MASS_TO_MG

from ..timeline import US_PER_HOUR, clock, day_bounds, days_between, local_day
from ..totals import amounts
from .model import Context

US_PER_SECOND = 1_000_000


@dataclass(frozen=True)
class Day:
    date: date
    mme: float
    by_drug: tuple[tuple[str, str, float, float], ...]  # (drug, route, mg, mme), most MME first
    without_factor: tuple[str, ...]


def _opioid_inputs(ctx: Context):
    key = ("opioid_inputs",)
    if key not in ctx._cache:
        c = ctx.course
        doses = ctx.doses.opioid
        pieces = [s for s in c.segments if s.start < ctx.until and ctx.is_opioid(s.drug)]
        ctx._cache[key] = (doses, pieces)
    return ctx._cache[key]


def days(ctx: Context) -> list[Day]:
    """Every local day from the first opioid given to the last day read, with its MME (0 when none)."""
    key = ("mme_days",)
    if key in ctx._cache:
        return ctx._cache[key]
    doses, pieces = _opioid_inputs(ctx)
    rows = amounts((), [(s.start, s.end, s.drug, s.route, s.mg_per_h) for s in pieces], ctx.tz, ctx.until, "day",
                   parts=_dose_parts(ctx, doses))
    per_day: dict[str, list] = defaultdict(list)
    for r in rows:
        per_day[r.date].append(r)
    out = []
    if rows:
        first = date.fromisoformat(rows[0].date)
        for d in days_between(first, local_day(ctx.until, ctx.tz)):
            out.append(_day(ctx, d, per_day.get(d.isoformat(), [])))
    ctx._cache[key] = out
    return out


def _dose_parts(ctx: Context, doses) -> dict[tuple, list[float]]:
    """The doses placed in their day's slot, as `totals.amounts` places them (its `parts`):
    the same sums, without a tuple per dose on the way."""
    tz = ctx.tz
    day_of = clock(tz).day
    slots: dict[date, tuple] = {}
    parts: dict[tuple, list[float]] = {}
    for a in doses:
        day = day_of(a.at)
        slot = slots.get(day)
        if slot is None:
            slot = slots[day] = (day, None, 0, day_bounds(day, tz)[0])
        key = (*slot, a.drug, a.route)
        got = parts.get(key)
        if got is None:
            parts[key] = [a.mg]
        else:
            got.append(a.mg)
    return parts


def _between(ctx: Context, lo: int, hi: int):
    """The opioid doses given in [lo, hi) (they are in clinical order)."""
    doses = ctx.doses.opioid
    key = ("opioid_times",)
    times = ctx._cache.get(key)
    if times is None:
        times = ctx._cache[key] = [a.at for a in doses]
    return doses[bisect_left(times, lo):bisect_left(times, hi)]


def _day(ctx: Context, d: date, rows) -> Day:
    if not rows:
        return Day(d, 0.0, (), ())
    hours = _day_hours(ctx, d)
    drugs, missing = [], []
    for r in rows:
        mme = ctx.mme_table.mme(r.drug, r.route, r.amount_mg, r.amount_mg, hours)
        if mme is None:
            missing.append(f"{r.drug} {r.route}")
        else:
            drugs.append((r.drug, r.route, r.amount_mg, mme))
    drugs.sort(key=lambda x: (-x[3], x[0], x[1]))
    return Day(d, math.fsum(x[3] for x in drugs), tuple(drugs), tuple(missing))


def _day_hours(ctx: Context, d: date) -> float:
    d0, d1 = day_bounds(d, ctx.tz)
    return (d1 - d0) / US_PER_HOUR


def reached(ctx: Context, day: Day, level: float) -> tuple[int, str | None]:
    """The first instant of `day` at which its running MME reached `level`, and the event that
    took it there (a dose, or the order of an infusion or PCA running then)."""
    d0, d1 = day_bounds(day.date, ctx.tz)
    d1 = min(d1, ctx.until + 1)
    per_mg = {(drug, route): mme / mg for drug, route, mg, mme in day.by_drug if mg > 0}
    _, pieces = _opioid_inputs(ctx)
    jumps = defaultdict(list)
    for a in _between(ctx, d0, d1):
        if (a.drug, a.route) in per_mg:
            jumps[a.at].append((per_mg[(a.drug, a.route)] * a.mg, a.event_id))
    ramps = []
    for s in pieces:
        lo, hi = max(s.start, d0), min(s.end if s.end is not None else ctx.until, d1)
        if lo < hi and s.mg_per_h and (s.drug, s.route) in per_mg:
            ramps.append((lo, hi, per_mg[(s.drug, s.route)] * s.mg_per_h / US_PER_HOUR,
                          ctx.course.orders[s.order_id].event_id))
    level *= 1 - 1e-9  # the day's total was summed another way: allow for rounding
    points = sorted({d0, *jumps, *(r[0] for r in ramps), *(r[1] for r in ramps)})
    total = 0.0
    for i, t in enumerate(points):
        for mme, event_id in jumps.get(t, ()):
            total += mme
            if total >= level:
                return t, event_id
        nxt = points[i + 1] if i + 1 < len(points) else d1
        running = [r for r in ramps if r[0] <= t < r[1]]
        slope = math.fsum(r[2] for r in running)
        if slope > 0 and total + slope * (nxt - t) >= level:
            when = t + max(0, math.ceil((level - total) / slope))
            when = min(-(-when // US_PER_SECOND) * US_PER_SECOND, nxt)  # a whole second, as charted times are
            return when, max(running, key=lambda r: r[2])[3]
        total += slope * (nxt - t)
    return d1 - 1, None


def day_orders(ctx: Context, day: Day) -> list[str]:
    """Event ids of the opioid orders that gave something on `day`."""
    d0, d1 = day_bounds(day.date, ctx.tz)
    _, pieces = _opioid_inputs(ctx)
    ids = {a.order_id for a in _between(ctx, d0, d1)}
    ids |= {s.order_id for s in pieces if s.start < d1 and (s.end is None or s.end > d0)}
    orders = [ctx.course.orders[i] for i in ids if i in ctx.course.orders]
    return [o.event_id for o in sorted(orders, key=lambda o: (o.start, o.seq))]


def window_mme(ctx: Context, a: int, b: int) -> float:
    """Opioid MME in [a, b) as a rate of use: infusions and PCA basal integrated, as-needed,
    bolus and PCA demand doses as given, and scheduled orders at their ordered daily dose
    spread over the time they were active and not held. Scheduled doses counted one by one
    would make a 24-hour window hold two or three doses of a q8h order depending on where it
    starts: a +50 % "rise" out of nothing. No factor: nothing. A tiered factor reads the
    window's amount as a daily dose scaled to 24 h."""
    _, pieces = _opioid_inputs(ctx)
    mg: dict[tuple[str, str], list[float]] = defaultdict(list)
    for x in _between(ctx, a, b):
        if x.kind != "scheduled":
            mg[(x.drug, x.route)].append(x.mg)
    for start, end, drug, route, mg_per_h in [*((s.start, s.end, s.drug, s.route, s.mg_per_h) for s in pieces),
                                              *_scheduled_pieces(ctx)]:
        lo, hi = max(start, a), min(end if end is not None else ctx.until, b)
        if lo < hi and mg_per_h:
            mg[(drug, route)].append(mg_per_h * (hi - lo) / US_PER_HOUR)
    hours = (b - a) / US_PER_HOUR
    total = []
    for (drug, route), parts in mg.items():
        amount = math.fsum(parts)
        mme = ctx.mme_table.mme(drug, route, amount, amount * 24 / hours if hours else amount, 24)
        if mme is not None:
            total.append(mme)
    return math.fsum(total)


def _scheduled_pieces(ctx: Context) -> list[tuple[int, int, str, str, float]]:
    """(start, end, drug, route, mg/h) of scheduled opioid orders at their ordered daily dose."""
    key = ("scheduled_pieces",)
    if key in ctx._cache:
        return ctx._cache[key]
    out = []
    for o in ctx.course.orders.values():
        if o.form != "scheduled" or not ctx.is_opioid(o.drug):
            continue
        end = min(o.end if o.end is not None else ctx.until, ctx.until)
        cuts = sorted({o.start, *(ch.at for ch in o.changes if o.start < ch.at < end)})
        for lo, hi in zip(cuts, [*cuts[1:], end]):
            state = ctx.state_at(o, lo)
            freq = ctx.frequency(state.dosing["frequency"])
            if state.held or hi <= lo or freq is None or not freq.per_day:
                continue
            dose = state.dosing["dose"]
            out.append((lo, hi, o.drug, state.route, dose["value"] * MASS_TO_MG[dose["unit"]] * freq.per_day / 24))
    ctx._cache[key] = out
    return out
