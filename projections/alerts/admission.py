"""A home medication left out at admission, or ordered differently, without a documented reason.

Baseline: at an admission, the home medication list (`home_medication_recorded`, the latest
line per drug and route charted before the end of the window); at a readmission, the list
the other facility sent (its `medication_list`), else the last discharge list still active.
Each baseline line is compared with the orders for the same drug written in the window
after the transition (default 24 h, cut short by the next transition):

- no order for the drug: an omission, unless a decision of the transition stops, holds or
  changes it. Raised only once the window is over (or the stay ended), never while the
  team still has time to write the order;
- orders for the drug, none of them as the line (form, route, dose, frequency, rate or
  PCA settings as first written): a dose discrepancy, unless a decision changes it.

Resolved, within the stay the transition began: an omission by a later order for the drug;
a discrepancy once an order for the drug stands as the line (changed to it, or a new one),
or once every order for the drug written since the transition has been stopped by the
prescriber (discontinued: an order ended by the next transition was not).
"""
from __future__ import annotations

from mar.units import MASS_TO_MG, RATE_TO_MG_PER_H

from ..course import Order, Transition
from ..timeline import US_PER_HOUR
from .model import Alert, Context, Resolution, dosing_label, order_label

RULE = "admission_discrepancy"
FIELDS = ("form", "dose", "frequency", "rate", "demand_dose", "lockout_minutes", "basal_rate")


def check(ctx: Context) -> list[Alert]:
    rule = ctx.settings.rule(RULE)
    window = int(rule["window_hours"] * US_PER_HOUR)
    kinds = set(rule["transitions"])
    transitions = ctx.course.transitions
    out = []
    for i, tr in enumerate(transitions):
        if tr.kind not in kinds:
            continue
        nxt = next((t.at for t in transitions[i + 1:] if t.kind != "transferred"), None)
        end = tr.at + window if nxt is None else min(tr.at + window, nxt)
        if ctx.course.died_at is not None:
            end = min(end, ctx.course.died_at)
        closed = end <= ctx.until
        orders = [o for o in ctx.course.orders.values() if tr.at <= o.start < min(end, ctx.until + 1)]
        stay = [x for x in (nxt, ctx.course.died_at) if x is not None]
        stay_end = min(stay) if stay else None  # what resolves an alert happens in the same stay
        for line, source, line_event in _baseline(ctx, tr, end):
            out += _compare(ctx, tr, line, source, line_event, orders, closed, stay_end)
    return out


def _baseline(ctx: Context, tr: Transition, end: int) -> list[tuple[dict, str, str]]:
    """(line with drug, route, dosing; where it comes from; its event id)."""
    if tr.kind == "readmitted":
        if tr.data.get("medication_list") is not None:
            return [(line, "list sent with the readmission", tr.event_id) for line in tr.data["medication_list"]]
        return [({"drug": x.drug, "route": x.route, "dosing": x.dosing}, "last discharge list", x.event_id)
                for x in tr.active_listed_before]
    latest: dict[tuple[str, str], tuple[dict, str, str]] = {}
    for t, e in ctx.by_type("home_medication_recorded"):
        if t < end:
            latest[(e["drug"].lower(), e["route"].lower())] = (e, "home list", e["event_id"])
    return list(latest.values())


def _compare(ctx: Context, tr: Transition, line: dict, source: str, line_event: str,
             orders: list[Order], closed: bool, stay_end: int | None) -> list[Alert]:
    drug = line["drug"].lower()
    mine = [o for o in orders if o.drug == drug]
    actions = {d["action"] for d in tr.data.get("decisions") or () if d["drug"].lower() == drug}
    word = "readmission" if tr.kind == "readmitted" else "admission"
    home = dosing_label(drug, line["route"].lower(), line["dosing"])
    keys = (tr.event_id, line_event, drug, line["route"].lower())
    evidence = [tr.event_id, line_event]
    if not mine:
        if not closed or actions & {"stop", "hold", "change"}:
            return []
        msg = (f"{home} ({source}) was not ordered after the {word} at {ctx.local(tr.at)} and no "
               f"decision documents why. Ask the prescriber whether to order it, or document the stop.")
        return [ctx.alert(RULE, keys, drug, tr.at, msg, evidence, resolution=_ordered_later(ctx, tr, drug, word, stay_end))]
    if any(_same(ctx, line, o) for o in mine) or "change" in actions:
        return []
    first = min(mine, key=lambda o: (o.start, o.seq))
    ordered = "; ".join(order_label(o, o.start) for o in mine)
    msg = (f"{home} ({source}), but ordered as {ordered} after the {word}{_per_day(ctx, line, first)}, "
           f"with no decision documenting the change. Confirm the intended dose with the prescriber "
           f"and document the reason.")
    return [ctx.alert(RULE, keys, drug, first.start, msg, evidence + [o.event_id for o in mine],
                      resolution=_put_right(ctx, tr, line, drug, stay_end))]


def _since(ctx: Context, tr: Transition, drug: str, stay_end: int | None) -> list[Order]:
    """The orders for the drug written in the stay the transition began (from it to the next
    admission, discharge, readmission or death), up to the record's end."""
    last = ctx.until if stay_end is None else min(ctx.until, stay_end - 1)
    return sorted((o for o in ctx.course.orders.values() if o.drug == drug and tr.at <= o.start <= last),
                  key=lambda o: (o.start, o.seq))


def _ordered_later(ctx: Context, tr: Transition, drug: str, word: str, stay_end: int | None) -> Resolution | None:
    found = _since(ctx, tr, drug, stay_end)
    if not found:
        return None
    o = found[0]
    return Resolution(o.start, f"{drug} ordered {ctx.after(tr.at, o.start)} after the {word}: "
                      f"{order_label(o, o.start)}", (o.event_id,))


def _put_right(ctx: Context, tr: Transition, line: dict, drug: str, stay_end: int | None) -> Resolution | None:
    """The first instant in the stay an order for the drug stood as the line; else, if every
    order for it in the stay was discontinued, the last discontinuation."""
    orders = _since(ctx, tr, drug, stay_end)
    matched = []
    for o in orders:
        times, states = ctx.states(o)
        for t, state in zip([o.start, *times], states):
            if t <= ctx.until and (stay_end is None or t < stay_end) and \
                    _same_dosing(ctx, line, state.dosing, state.route):
                matched.append((t, o))
                break
    if matched:
        t, o = min(matched, key=lambda m: (m[0], m[1].seq))
        how = "ordered" if t == o.start else "changed"
        return Resolution(t, f"{drug} {how} as the line: {order_label(o, t)}",
                          (o.event_id if t == o.start else _change_at(o, t),))
    if orders and all(o.ended_by == "discontinued" and o.end <= ctx.until for o in orders):  # in the stay
        last = max(orders, key=lambda o: (o.end, o.seq))
        why = f" ({last.end_reason})" if last.end_reason else ""
        return Resolution(last.end, f"{drug} stopped{why}",
                          tuple(o.end_event_id for o in orders if o.end_event_id))
    return None


def _change_at(order: Order, t: int) -> str:
    return next(ch.event_id for ch in reversed(order.changes) if ch.at == t)


def _same(ctx: Context, line: dict, order: Order) -> bool:
    return _same_dosing(ctx, line, order.dosing, order.route)


def _same_dosing(ctx: Context, line: dict, dosing: dict, route: str) -> bool:
    a = line["dosing"]
    if _route(ctx, line["route"]) != _route(ctx, route):
        return False
    return all(_value(ctx, f, a.get(f)) == _value(ctx, f, dosing.get(f)) for f in FIELDS)


def _route(ctx: Context, text: str) -> str:
    return ctx.catalog.route(text) or text.lower()


def _value(ctx: Context, name: str, x):
    """A dosing field in one canonical form: 0.6 g = 600 mg, 'three times daily' = tid."""
    if isinstance(x, dict):
        unit = x["unit"]
        if unit in MASS_TO_MG:
            return (round(x["value"] * MASS_TO_MG[unit], 9), "mg")
        if unit in RATE_TO_MG_PER_H:
            factor, per_kg = RATE_TO_MG_PER_H[unit]
            return (round(x["value"] * factor, 9), "mg/kg/h" if per_kg else "mg/h")
        return (x["value"], unit)
    if name == "frequency" and isinstance(x, str):
        freq = ctx.catalog.frequency(x)
        return freq.code if freq is not None else x.lower()
    return x


def _per_day(ctx: Context, line: dict, order: Order) -> str:
    """' (1800 mg/day at home, 1500 mg/day ordered)' for scheduled doses, else ''."""
    a, b = _mg_per_day(ctx, line["dosing"]), _mg_per_day(ctx, order.dosing)
    if a is None or b is None or a == b:
        return ""
    return f" ({a:g} mg/day before, {b:g} mg/day ordered)"


def _mg_per_day(ctx: Context, dosing: dict) -> float | None:
    if dosing["form"] != "scheduled" or dosing["dose"]["unit"] != "mg":
        return None
    freq = ctx.catalog.frequency(dosing["frequency"])
    return None if freq is None or freq.per_day is None else dosing["dose"]["value"] * freq.per_day
