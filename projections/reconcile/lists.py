"""Which two lists a transition compares, and what was already missing when it happened.

- admission: the home list (home medications recorded since the last discharge, up to the
  end of the admission window) against the admission orders (orders written in the first
  24 hours, or until the next transition). With no home list recorded after an earlier
  discharge, the list the patient left with stands in for it.
- readmission: what the patient was on when they came back — the receiving facility's
  list (`readmitted.medication_list`), orders charted while away, and the last discharge
  list, merged by drug and route in that order of trust — against the new orders.
- discharge, transfer: the orders active just before against the list that leaves (a
  transfer without a list carries every order on).
- a proposed list (`--list`): the orders active at the time given against that list.

Admission and readmission also look back: a medication left off an earlier discharge list
without a reason, and never ordered since, is reported as missing since that discharge.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mar.catalog import Catalog
from mar.errors import MarError
from projections.course import Course, Transition
from projections.timeline import US_PER_HOUR, instant

from .compare import Line, RecentStop, compare
from .items import Item, from_home, from_line, from_listed, from_order, route_code

KINDS = {"admission": "admitted", "transfer": "transferred", "discharge": "discharged",
         "readmission": "readmitted"}
NOUN = {v: k for k, v in KINDS.items()}
# Admission orders: those written within this time of the admission (the usual expectation
# that admission reconciliation is done within the first day).
ADMISSION_WINDOW = 24 * US_PER_HOUR
# An order discontinued this shortly before a transition is shown as a documented stop.
RECENT_STOP = 24 * US_PER_HOUR


class NoTransition(MarError):
    """The patient has no transition of the kind asked for (at or before the time given)."""


@dataclass
class Sides:
    kind: str  # admission, transfer, discharge, readmission
    at: int
    transition: Transition | None
    before: list[Item]
    after: list[Item]
    decisions: list[dict]
    before_label: str
    after_label: str
    after_are_orders: bool
    recent_stops: list[RecentStop] = field(default_factory=list)
    missing: dict[str, tuple[int, Item]] = field(default_factory=dict)  # drug -> (since, item)


def find_transition(course: Course, kind: str | None, at: int | None) -> Transition:
    """The latest transition of that kind (any kind if None) at or before `at`."""
    wanted = KINDS[kind] if kind else None
    found = [t for t in course.transitions
             if (wanted is None or t.kind == wanted) and (at is None or t.at <= at)]
    if not found:
        what = f"no {kind}" if kind else "no transition"
        when = " at or before that time" if at is not None else ""
        raise NoTransition(f"{what} recorded for patient {course.patient_id}{when}")
    return found[-1]


def sides_of(course: Course, t: Transition, catalog: Catalog) -> Sides:
    kind = NOUN[t.kind]
    if kind in ("discharge", "transfer"):
        return _leaving(course, t, kind)
    return _arriving(course, t, kind, catalog)


def proposed_sides(course: Course, lines: list[dict], decisions: list[dict], at: int, kind: str,
                   label: str) -> Sides:
    """A list not yet recorded against what is active at `at`: orders, or, outside a stay,
    the list the patient left with."""
    orders = course.active_orders(at)
    if orders:
        before = [from_order(o, at) for o in sorted(orders, key=_order_key)]
        before_label = "orders active at that time"
    else:
        before = [from_listed(x) for x in course.active_listed(at)]
        before_label = "medications listed at the last discharge" if before else "nothing active"
    after = [from_line(line, label) for line in lines]
    return Sides(kind, at, None, before, after, decisions, before_label, label, False,
                 _recent_stops(course, at, {o.order_id for o in orders}))


# --- discharge and transfer -------------------------------------------------------------------


def _leaving(course: Course, t: Transition, kind: str) -> Sides:
    orders = [course.orders[oid] for oid in t.active_orders_before if oid in course.orders]
    before = [from_order(o, t.at - 1) for o in sorted(orders, key=_order_key)]
    listed = t.data.get("medication_list")
    decisions = list(t.data.get("decisions") or ())
    if listed is None:  # a transfer without a list carries every order on
        after = [from_order(o, t.at - 1) for o in sorted(orders, key=_order_key)]
        for item in after:
            item.source = "order (carried on)"
        after_label = "orders carried on (the transfer has no list)"
    else:
        after = [from_line(line, f"{kind} list", t.event_id) for line in listed]
        after_label = f"{kind} list"
    return Sides(kind, t.at, t, before, after, decisions, "orders active just before", after_label, False,
                 _recent_stops(course, t.at, set(t.active_orders_before)))


def _recent_stops(course: Course, at: int, active: set[str]) -> list[RecentStop]:
    out = []
    for o in sorted(course.orders.values(), key=lambda o: (o.end or 0, o.order_id)):
        if o.order_id in active or o.ended_by != "discontinued" or o.end is None:
            continue
        if at - RECENT_STOP <= o.end <= at:
            out.append(RecentStop(from_order(o, o.end - 1), o.end, o.end_reason))
    return out


# --- admission and readmission -------------------------------------------------------------------


def _arriving(course: Course, t: Transition, kind: str, catalog: Catalog) -> Sides:
    previous = _previous_discharge(course, t)
    window_end = _window_end(course, t)
    decisions = list(t.data.get("decisions") or ())
    if kind == "readmission":
        before, label = _came_back_on(course, t, catalog), "what the patient came back on"
    else:
        before, label = _home_list(course, t, previous, window_end)
    after = [from_order(o, min(window_end, o.end or window_end) - 1)
             for o in sorted(course.orders.values(), key=_order_key) if t.at <= o.start < window_end]
    sides = Sides(kind, t.at, t, before, after, decisions, label, "admission orders (first 24 h)", True)
    if previous is not None:
        sides.missing = still_missing(course, previous, catalog)
    return sides


def _window_end(course: Course, t: Transition) -> int:
    later = [x.at for x in course.transitions if x.at > t.at]
    end = t.at + ADMISSION_WINDOW
    return min([end, *later]) if later else end


def _previous_discharge(course: Course, t: Transition) -> Transition | None:
    found = [x for x in course.transitions if x.kind == "discharged" and x.at < t.at]
    return found[-1] if found else None


def _home_list(course: Course, t: Transition, previous: Transition | None, window_end: int
               ) -> tuple[list[Item], str]:
    since = previous.at if previous is not None else None
    latest: dict[tuple[str, str], dict] = {}
    for e in sorted(course.home, key=lambda e: instant(e["effective_at"])):
        at = instant(e["effective_at"])
        if (since is None or at > since) and at < window_end:
            latest[(e["drug"].strip().lower(), e["route"].strip().lower())] = e
    if latest:
        return [from_home(e) for e in latest.values()], "home list"
    listed = [from_listed(x) for x in t.active_listed_before]
    if listed:
        return listed, "list of the last discharge (no home list recorded since)"
    return [], "home list (none recorded)"


def _came_back_on(course: Course, t: Transition, catalog: Catalog) -> list[Item]:
    """Facility list first, then orders charted while away, then the last discharge list:
    one item per drug and route, remembering every list it was on."""
    facility = [from_line(line, "facility list", t.event_id) for line in t.data.get("medication_list") or ()]
    away = [from_order(course.orders[oid], t.at - 1) for oid in t.active_orders_before if oid in course.orders]
    for item in away:
        item.source = "order charted while away"
    sent = [from_listed(x) for x in t.active_listed_before]
    merged: dict[tuple[str, str], Item] = {}
    for item in facility + away + sent:
        key = (item.drug, route_code(item.route, catalog))
        if key in merged:
            if item.source not in merged[key].sources:
                merged[key].sources.append(item.source)
            continue
        item.sources = [item.source]
        merged[key] = item
    return list(merged.values())


def still_missing(course: Course, discharge: Transition, catalog: Catalog) -> dict[str, tuple[int, Item]]:
    """Medications left off this discharge list without a reason (or missing since an
    earlier one and not ordered again during the stay it ended): drug -> (since, item)."""
    missing: dict[str, tuple[int, Item]] = {}
    stay_start = _stay_start(course, discharge)
    if stay_start is not None:
        ordered = {o.drug for o in course.orders.values() if stay_start.at <= o.start < discharge.at}
        previous = _previous_discharge(course, stay_start)
        if previous is not None:
            for drug, value in still_missing(course, previous, catalog).items():
                if drug not in ordered:
                    missing[drug] = value
    sides = _leaving(course, discharge, "discharge")
    for line in compare(sides.before, sides.after, sides.decisions, catalog, after_are_orders=False):
        if line.status == "omitted" and line.drug not in missing:
            missing[line.drug] = (discharge.at, line.before)  # type: ignore[assignment]
    return missing


def _stay_start(course: Course, discharge: Transition) -> Transition | None:
    found = [x for x in course.transitions if x.kind in ("admitted", "readmitted") and x.at < discharge.at]
    return found[-1] if found else None


def apply_missing(lines: list[Line], sides: Sides) -> None:
    """Mark medications missing since an earlier discharge: restarted now (a new line), or
    still missing (an omitted line of their own)."""
    present = {x.drug for x in sides.before}
    for drug, (since, item) in sorted(sides.missing.items()):
        if drug in present:
            continue  # the facility gave it again: no longer missing
        restarted = [x for x in lines if x.drug == drug and x.status == "new"]
        for line in restarted:
            line.missing_since, line.missing_item = since, item
            line.notes.append("left off an earlier discharge list without a documented reason; restarted now")
        if not restarted:
            lines.append(Line(drug, "omitted", item, None, None, ["omission"], "undocumented",
                              ["left off an earlier discharge list without a documented reason; "
                               "still not ordered"], [], since, item))


def _order_key(o) -> tuple:
    return (o.drug, o.start, o.order_id)
