"""Daily administered MME: thresholds crossed, and a steep rise from one day to the next.

Threshold (default 50 and 90 MME/day, CDC 2016): raised on the local day the day's MME
first reaches a threshold, at the instant its running total got there; not again while
each following day stays at or above it; again after a day below it. When one day
crosses several thresholds at once only the highest is raised (the lower one says nothing
more).

Rise: a day whose MME exceeds the day before by more than `rise_percent` (default 100 %:
a doubling), when the day before had at least `min_previous_mme` (a first, partial or
opioid-free day says nothing about escalation). Raised at the instant the running total
passed the level.
"""
from __future__ import annotations

from .model import Alert, Context
from .opioid_use import Day, day_orders, days, reached

THRESHOLD = "mme_threshold"
RISE = "mme_rise"


def check_thresholds(ctx: Context) -> list[Alert]:
    levels = sorted(ctx.settings.rule(THRESHOLD)["thresholds"], key=lambda t: t["mme"])
    above = {t["mme"]: False for t in levels}
    out = []
    for day in days(ctx):
        crossed = [t for t in levels if day.mme >= t["mme"] * (1 - 1e-9) and not above[t["mme"]]]
        for t in levels:
            above[t["mme"]] = day.mme >= t["mme"] * (1 - 1e-9)
        if crossed:
            out.append(_threshold_alert(ctx, day, crossed[-1]))
    return out


def _threshold_alert(ctx: Context, day: Day, level: dict) -> Alert:
    at, event_id = reached(ctx, day, level["mme"])
    msg = (f"Opioids given on {day.date} reached {level['mme']:g} MME/day at {ctx.local(at)[11:]} "
           f"(day total {_total(ctx, day)}). CDC: at 50 MME/day or more reassess benefits and risks; "
           f"avoid 90 or more or justify it. Review the opioid plan, sedation and respiratory monitoring, "
           f"and naloxone.")
    return ctx.alert(THRESHOLD, (day.date.isoformat(), level["mme"]), _drugs(day), at, msg,
                     [event_id, *day_orders(ctx, day)], severity=level["severity"])


def check_rise(ctx: Context) -> list[Alert]:
    rule = ctx.settings.rule(RISE)
    factor = 1 + rule["rise_percent"] / 100
    out = []
    series = days(ctx)
    for before, day in zip(series, series[1:]):
        if before.mme < rule["min_previous_mme"] or day.mme <= before.mme * factor:
            continue
        at, event_id = reached(ctx, day, before.mme * factor)
        rise = (day.mme / before.mme - 1) * 100
        msg = (f"Opioid use rose {rise:.0f}% from {before.date} ({before.mme:,.0f} MME) to {day.date} "
               f"({_total(ctx, day)}); it passed {before.mme * factor:,.0f} MME at {ctx.local(at)[11:]}. "
               f"Check sedation and respiratory rate, and whether pain control needs review.")
        out.append(ctx.alert(RISE, (day.date.isoformat(),), _drugs(day), at, msg, [event_id, *day_orders(ctx, day)]))
    return out


def _drugs(day: Day) -> str:
    names = []
    for drug, *_ in day.by_drug:
        if drug not in names:
            names.append(drug)
    return ", ".join(names) or "opioids"


def _total(ctx: Context, day: Day) -> str:
    parts = "; ".join(f"{drug} {route} {mg:,.4g} mg = {mme:,.0f} MME" for drug, route, mg, mme in day.by_drug)
    missing = f"; no factor for {', '.join(day.without_factor)}" if day.without_factor else ""
    return f"{day.mme:,.0f} MME under {ctx.mme_table.name}: {parts}{missing}"
