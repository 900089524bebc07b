"""A reduction of an adjuvant followed by a rise in opioid use: a failed taper (POD 6 of the
reference case: ketamine 27.5 -> 13.8 mcg/kg/h, then hydromorphone use up).

Adjuvants: non-opioid drugs of the catalog classes in `classes` (default NMDA antagonists:
ketamine, memantine). A reduction is a change of an adjuvant order to a lower rate (mg/h at
the weight of that instant) or a lower daily dose, a hold, or a discontinuation. Opioid use
(MME, all opioids; scheduled orders at their ordered daily dose, see
`opioid_use.window_mme`) in the `window_hours` after the reduction is compared with the same
length before it, as MME per hour so that a window cut short by the end of the record, an
admission or death still compares like with like (each side needs `min_hours`). Raised
when use after is more than `rise_percent` above use before, at the reduction. Further
reductions of the same order within the window are the same episode: they join the alert's
evidence instead of raising their own.
"""
from __future__ import annotations

from mar.units import MASS_TO_MG

from ..course import Change, Order, rate_mg_per_h
from ..timeline import US_PER_HOUR
from .model import Alert, Context
from .opioid_use import window_mme

RULE = "adjuvant_taper"


def check(ctx: Context) -> list[Alert]:
    rule = ctx.settings.rule(RULE)
    window = int(rule["window_hours"] * US_PER_HOUR)
    out = []
    for order in sorted(ctx.course.orders.values(), key=lambda o: (o.start, o.seq)):
        if ctx.is_opioid(order.drug) or not ctx.in_class(order.drug, rule["classes"]):
            continue
        last: Alert | None = None
        for ch, before, after, unit in reductions(ctx, order):
            if last is not None and ch.at - last.at < window:
                # one failed taper, one alert: later steps of the same episode join its evidence
                last.evidence.append(ch.event_id)
                continue
            alert = _compare(ctx, rule, order, ch, before, after, unit)
            if alert is not None:
                out.append(alert)
                last = alert
    return out


def reductions(ctx: Context, order: Order):
    """(change, level before, level after, unit) for each step down of the order."""
    level = _level(ctx, order, order.start)
    for ch in order.changes:
        if order.end is not None and ch.at > order.end:
            break
        if ch.kind in ("held", "discontinued"):
            new = 0.0
        else:
            new = _level(ctx, order, ch.at)
        if level is not None and new is not None and new < level:
            yield ch, level, new, _unit(order)
        if ch.kind != "held":
            level = new


def _level(ctx: Context, order: Order, at: int) -> float | None:
    """mg/h of an infusion, mg/day of a scheduled order, as it stood at `at`."""
    state = ctx.state_at(order, at)
    if state.held:
        return 0.0
    d = state.dosing
    if d["form"] == "infusion":
        return rate_mg_per_h(d["rate"], ctx.course.weight_at(at))
    if d["form"] == "scheduled":
        freq = ctx.frequency(d["frequency"])
        if freq is None or freq.per_day is None:
            return None
        return d["dose"]["value"] * MASS_TO_MG[d["dose"]["unit"]] * freq.per_day
    return None


def _unit(order: Order) -> str:
    return "mg/h" if order.form == "infusion" else "mg/day"


def _compare(ctx: Context, rule: dict, order: Order, ch: Change, before: float, after: float,
             unit: str) -> Alert | None:
    t = ch.at
    window = int(rule["window_hours"] * US_PER_HOUR)
    start = max(t - window, _stay_start(ctx, t))
    end = min(t + window, ctx.until)
    if ctx.course.died_at is not None:
        end = min(end, ctx.course.died_at)
    need = rule["min_hours"] * US_PER_HOUR
    if t - start < need or end - t < need:
        return None
    used_before, used_after = window_mme(ctx, start, t), window_mme(ctx, t, end)
    per_h_before = used_before / ((t - start) / US_PER_HOUR)
    per_h_after = used_after / ((end - t) / US_PER_HOUR)
    if per_h_before <= 0 or per_h_after <= per_h_before * (1 + rule["rise_percent"] / 100):
        return None
    rise = (per_h_after / per_h_before - 1) * 100
    if ch.kind in ("discontinued", "held"):
        what = "stopped" if ch.kind == "discontinued" else "held"
    elif after == 0:
        what = f"set to 0 (stopped) from {before:.3g} {unit}"
    else:
        what = f"reduced from {before:.3g} to {after:.3g} {unit}"
    why = f" ({ch.reason})" if ch.reason else ""
    msg = (f"{order.drug} {order.route} (order {order.order_id}) {what} at {ctx.local(t)}{why}; opioid use "
           f"then rose {rise:.0f}%: {per_h_after * 24:,.0f} MME per 24 h in the {_hours(end - t)} after, "
           f"against {per_h_before * 24:,.0f} in the {_hours(t - start)} before. A failed taper: reassess pain "
           f"and consider returning {order.drug} to the previous level or tapering more slowly.")
    evidence = [ch.event_id, order.event_id, *_opioid_rises(ctx, t, end)]
    return ctx.alert(RULE, (ch.event_id,), order.drug, t, msg, evidence)


def _opioid_rises(ctx: Context, a: int, b: int) -> list[str]:
    """Event ids of opioid order changes in [a, b) that raised a rate or a dose."""
    found = []
    for o in ctx.course.orders.values():
        if not ctx.is_opioid(o.drug):
            continue
        for ch in o.changes:
            if a <= ch.at < b and ch.kind in ("changed", "rate"):
                new, old = _opioid_level(ctx, o, ch.at), _opioid_level(ctx, o, ch.at - 1)
                if any(x > y for x, y in zip(new, old)):
                    found.append((ch.at, ch.seq, ch.event_id))
    return [i for *_, i in sorted(found)]


def _opioid_level(ctx: Context, order: Order, at: int) -> tuple[float, float]:
    """(mg/h running, mg per dose) of an opioid order at `at`: either going up is a rise."""
    d = ctx.state_at(order, at).dosing
    rate = d.get("rate") if d["form"] == "infusion" else d.get("basal_rate")
    mg_h = (rate_mg_per_h(rate, ctx.course.weight_at(at)) or 0.0) if rate else 0.0
    dose = d.get("dose") or d.get("demand_dose")
    mg = dose["value"] * MASS_TO_MG[dose["unit"]] if dose else 0.0
    return (mg_h, mg)


def _stay_start(ctx: Context, t: int) -> int:
    """Opioid use before the record (or before this stay began) is unknown, not zero."""
    starts = [tr.at for tr in ctx.course.transitions if tr.kind in ("admitted", "readmitted") and tr.at <= t]
    first = ctx.events[0][0] if ctx.events else t
    return max([first, *starts])


def _hours(us: int) -> str:
    return f"{us / US_PER_HOUR:g} h"
