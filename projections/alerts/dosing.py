"""Doses beyond what their order allows, and rates that cannot be dosed.

- weight_missing: a weight-based infusion (mcg/kg/h ...) running at an instant with no
  current weight. The write side refuses such a rate without a prior weight, but a weight
  entered in error afterwards leaves the infusion without one: its mg/h is unknown.
- as_needed_too_soon: an as-needed dose (or bolus on an as-needed order) given less than
  the frequency's minimum interval after the previous one (q4h: 4 h), minus `tolerance_minutes`.
- as_needed_daily_max: in one local day, more of an as-needed order than its `max_daily`,
  or without one more doses than its frequency allows per day (q4h: 6).
- pca_limit: a PCA with a limit (e.g. 20 mg per 1 h or 4 h) that delivered more in a
  moving window ending at a demand or bolus: demand doses, clinician boluses and the basal
  rate together. One alert per episode: not again until a dose finds the window back within it.

A weight_missing alert is resolved once the rate can be dosed again (a weight recorded) or
the infusion stops; the others are about doses given, which the record cannot undo: a
person acknowledges them.
"""
from __future__ import annotations

import math
from collections import defaultdict

from mar.units import MASS_TO_MG

from ..course import Administration, Order
from ..timeline import US_PER_HOUR, clock
from .model import Alert, Context, Resolution, order_label

WEIGHT = "weight_missing"
TOO_SOON = "as_needed_too_soon"
DAILY_MAX = "as_needed_daily_max"
PCA = "pca_limit"
US_PER_MIN = 60_000_000


def check_weight(ctx: Context) -> list[Alert]:
    out = []
    seen = set()
    voided = None
    for s in ctx.course.segments:
        if s.mg_per_h is not None or s.order_id in seen or s.start > ctx.until:
            continue
        seen.add(s.order_id)
        order = ctx.course.orders[s.order_id]
        msg = (f"{order_label(order, s.start)} runs at {s.rate:g} {s.rate_unit} from {ctx.local(s.start)} with no "
               f"current weight, so its dose in mg/h is unknown. Weigh the patient and record the weight "
               f"(or correct the weight entered in error).")
        if voided is None:
            voided = _voided_weights(ctx)
        out.append(ctx.alert(WEIGHT, (s.order_id, s.start), order.drug, s.start, msg,
                             [order.event_id, *voided], resolution=_dosable(ctx, order)))
    return out


def _dosable(ctx: Context, order: Order) -> Resolution | None:
    """When the order's rate could be dosed in mg/h again (a weight recorded, a rate in another
    unit) or it stopped running, after its last stretch without a weight."""
    mine = [s for s in ctx.course.segments if s.order_id == order.order_id and s.start <= ctx.until]
    last = max((s for s in mine if s.mg_per_h is None), key=lambda s: s.start)
    if last.end is None or last.end > ctx.until:
        return None
    after = next((s for s in mine if s.start == last.end and s.mg_per_h is not None), None)
    if after is None:
        if order.end != last.end:
            return None
        how = "stopped" if order.ended_by == "discontinued" else f"ended ({order.ended_by})"
        return Resolution(order.end, f"{order.drug} {how}",
                          (order.end_event_id,) if order.end_event_id else ())
    weighed = [event_id for t, _, event_id in ctx.course.weights if t == last.end]
    changed = [ch.event_id for ch in order.changes if ch.at == last.end]
    kg = f", weight {after.weight_kg:g} kg" if after.weight_kg is not None else ""
    return Resolution(after.start, f"{order.drug} dosable again: {after.rate:g} "
                      f"{after.rate_unit}{kg} = {after.mg_per_h:g} mg/h", tuple(weighed or changed))


def _voided_weights(ctx: Context) -> list[str]:
    """Ids of the corrections of weights, in clinical order."""
    return [e["event_id"] for _, e in ctx.by_type("entered_in_error")
            if _type_of(ctx, e["target_event_id"]) == "weight_recorded"]


def _type_of(ctx: Context, event_id: str) -> str | None:
    key = ("types",)
    if key not in ctx._cache:
        ctx._cache[key] = {e["event_id"]: e["type"] for _, _, e in ctx.events}
    return ctx._cache[key].get(event_id)


def check_too_soon(ctx: Context) -> list[Alert]:
    tolerance = ctx.settings.rule(TOO_SOON)["tolerance_minutes"] * US_PER_MIN
    out = []
    for order_id, doses in ctx.doses.as_needed.items():
        order = ctx.course.orders[order_id]
        constant = ctx.constant_state(order)
        if constant is not None:  # most orders never change: one frequency for every dose
            freq = ctx.frequency(constant.dosing["frequency"])
            if freq is None or not freq.min_interval_hours:
                continue
            shortest = freq.min_interval_hours * US_PER_HOUR - tolerance
            pairs = [(prev, dose) for prev, dose in zip(doses, doses[1:]) if dose.at - prev.at < shortest]
        else:
            pairs = zip(doses, doses[1:])
        for prev, dose in pairs:
            freq = ctx.frequency(ctx.state_at(order, dose.at).dosing["frequency"])
            if freq is None or not freq.min_interval_hours:
                continue
            interval = dose.at - prev.at
            if interval >= freq.min_interval_hours * US_PER_HOUR - tolerance:
                continue
            msg = (f"{order.drug} {dose.mg:g} mg {dose.route} given at {ctx.local(dose.at)}, {_span(interval)} after "
                   f"the previous dose at {ctx.local(prev.at)}; {order_label(order, dose.at)} allows one every "
                   f"{freq.min_interval_hours:g} h. Check the patient for sedation and tell the prescriber if "
                   f"pain needs doses this often.")
            out.append(ctx.alert(TOO_SOON, (dose.event_id,), order.drug, dose.at, msg,
                                 [dose.event_id, prev.event_id, order.event_id]))
    return out


def check_daily_max(ctx: Context) -> list[Alert]:
    out = []
    for order_id, doses in ctx.doses.as_needed.items():
        order = ctx.course.orders[order_id]
        constant = ctx.constant_state(order)
        if constant is not None and constant.dosing.get("max_daily") is None:
            # counted against the frequency, the same all along: only a day with more doses can go over
            freq = ctx.frequency(constant.dosing["frequency"])
            if freq is None or freq.per_day is None or len(doses) <= freq.per_day:
                continue
        per_day: dict = defaultdict(list)
        day_of = clock(ctx.tz).day
        for a in doses:
            per_day[day_of(a.at)].append(a)
        for day, given in sorted(per_day.items()):
            alert = _over_daily_max(ctx, order, day, given)
            if alert is not None:
                out.append(alert)
    return out


def _over_daily_max(ctx: Context, order: Order, day, given: list[Administration]) -> Alert | None:
    total, count = 0.0, 0
    for a in given:
        total += a.mg
        count += 1
        dosing = ctx.state_at(order, a.at).dosing
        cap = dosing.get("max_daily")
        if cap is not None:
            limit = cap["value"] * MASS_TO_MG[cap["unit"]]
            if total <= limit * (1 + 1e-9):
                continue
            what = f"{total:g} mg given, more than its maximum of {limit:g} mg a day"
        else:
            freq = ctx.frequency(dosing["frequency"])
            if freq is None or freq.per_day is None or count <= freq.per_day:
                continue
            what = f"{count} doses given, more than the {freq.per_day} a day its frequency allows"
        msg = (f"{order_label(order, a.at)} on {day}: {what} (the dose at {ctx.local(a.at)[11:]} went over). "
               f"Hold further doses and ask the prescriber to review the pain plan.")
        return ctx.alert(DAILY_MAX, (order.order_id, day.isoformat()), order.drug, a.at, msg,
                         [a.event_id, order.event_id, *(x.event_id for x in given if x is not a)])
    return None


def check_pca(ctx: Context) -> list[Alert]:
    out = []
    for order in sorted(ctx.course.orders.values(), key=lambda o: (o.start, o.seq)):
        if order.form == "pca" and order.dosing.get("limit_hours"):
            out += _pca_episodes(ctx, order)
    return out


def _pca_episodes(ctx: Context, order: Order) -> list[Alert]:
    hours = order.dosing["limit_hours"]
    window = int(hours * US_PER_HOUR)
    doses = ctx.doses.pca.get(order.order_id, [])
    basal = [s for s in ctx.course.segments if s.order_id == order.order_id and s.mg_per_h]
    out, over, lo = [], False, 0
    for i, a in enumerate(doses):
        limit = ctx.state_at(order, a.at).dosing.get("limit")
        if limit is None:
            continue
        start = a.at - window
        while doses[lo].at <= start:
            lo += 1
        demand = math.fsum(x.mg for x in doses[lo:i + 1])
        background = math.fsum(s.mg_per_h * (min(s.end if s.end is not None else a.at, a.at) - max(s.start, start))
                               / US_PER_HOUR for s in basal if s.start < a.at and (s.end is None or s.end > start))
        delivered = demand + background
        cap = limit["value"] * MASS_TO_MG[limit["unit"]]
        if delivered <= cap * (1 + 1e-9):
            over = False
            continue
        if over:
            continue
        over = True
        msg = (f"{order_label(order, a.at)} delivered {delivered:.4g} mg in the {hours:g} h up to {ctx.local(a.at)} "
               f"({demand:.4g} mg demand and boluses, {background:.4g} mg basal), over its limit of {cap:g} mg per "
               f"{hours:g} h. Check the pump settings and the patient's sedation and respiratory rate.")
        out.append(ctx.alert(PCA, (order.order_id, a.event_id), order.drug, a.at, msg,
                             [a.event_id, order.event_id, *(x.event_id for x in doses[lo:i])]))
    return out


def _span(us: int) -> str:
    minutes = round(us / US_PER_MIN)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
