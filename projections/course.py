"""One patient's medication course, folded from the stored event dicts. Pure and fast: no I/O.

`build_course(events, known_at=K)` reads the events of one patient exactly as stored
(plain dicts, see `mar.recording.Recorder._stored_form`) and returns a `Course`:

- orders with their dosing history over clinical time, status and how they ended;
- rate segments (infusions and PCA basal) in mg/h, weight-based rates at the weight of
  each instant;
- discrete administrations (scheduled, as needed, bolus, PCA demand) in mg;
- medications listed on a discharge list, active until the next admission or death;
- transitions (with what was active just before them), weights, death.

Two kinds of "as of" (docs/event-format.md, "How the projections read the events"):
- clinical time: `course.regimen(at)`, or `at`/`until` of the totals, read the course at T;
- knowledge time: `known_at=K` drops every event recorded after K before folding, so a
  correction (entered in error) recorded after K is not applied, nor is late charting.

An event named by an `entered_in_error` counts for no clinical time once the correction
is known: the fact was never true, only believed for a while.
Instants are integer microseconds since the epoch (`projections.timeline`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

from mar.units import MASS_TO_MG, RATE_TO_MG_PER_H, WEIGHT_TO_KG

from .timeline import instant

ORDER_EVENTS = ("order_changed", "infusion_rate_changed", "order_held", "order_resumed",
                "order_discontinued")
ENDING_TRANSITIONS = ("admitted", "readmitted", "discharged")
CHANGEABLE = ("dose", "frequency", "rate", "route", "max_daily", "demand_dose",
              "lockout_minutes", "basal_rate", "limit")
# Only these events change orders, segments and lists; everything else is a discrete fact.
STRUCTURAL = frozenset((
    "patient_registered", "weight_recorded", "admitted", "transferred", "discharged",
    "readmitted", "died", "home_medication_recorded", "medication_ordered", *ORDER_EVENTS,
))


def dose_mg(dose: dict) -> float:
    return dose["value"] * MASS_TO_MG[dose["unit"]]


def rate_mg_per_h(rate: dict, weight_kg: float | None) -> float | None:
    """mg/h of a rate; None for a weight-based rate without a known weight (never guessed)."""
    factor, per_kg = RATE_TO_MG_PER_H[rate["unit"]]
    if per_kg:
        return None if weight_kg is None else rate["value"] * factor * weight_kg
    return rate["value"] * factor


def is_weight_based(rate: dict | None) -> bool:
    return rate is not None and RATE_TO_MG_PER_H[rate["unit"]][1]


@dataclass(frozen=True)
class Change:
    """One event in an order's life after it was written, in clinical order."""

    at: int
    seq: int
    kind: str  # changed, rate, held, resumed, discontinued
    fields: dict
    reason: str | None
    event_id: str


@dataclass
class Order:
    order_id: str
    event_id: str
    drug: str
    route: str
    dosing: dict
    prescriber: str | None
    indication: str | None
    start: int
    seq: int
    changes: list[Change] = field(default_factory=list)
    end: int | None = None
    ended_by: str | None = None  # discontinued, discharged, admitted, readmitted, transferred, died
    end_reason: str | None = None
    end_event_id: str | None = None

    @property
    def form(self) -> str:
        return self.dosing["form"]

    def active_at(self, at: int) -> bool:
        return self.start <= at and (self.end is None or at < self.end)

    def state_at(self, at: int) -> "OrderState":
        """The order as it stood at clinical time `at` (changes at or before it applied)."""
        state = OrderState(dict(self.dosing), self.route, False, None)
        for ch in self.changes:
            if ch.at > at:
                break
            if self.end is not None and ch.at >= self.end:
                break
            state.apply(ch)
        return state


@dataclass
class OrderState:
    dosing: dict
    route: str
    held: bool
    last_change: Change | None

    def apply(self, ch: Change) -> None:
        if ch.kind == "held":
            self.held = True
        elif ch.kind == "resumed":
            self.held = False
        elif ch.kind == "rate":
            key = "rate" if self.dosing["form"] == "infusion" else "basal_rate"
            self.dosing[key] = ch.fields["rate"]
        elif ch.kind == "changed":
            for k, v in ch.fields.items():
                if k == "route":
                    self.route = v.lower()
                else:
                    self.dosing[k] = v
        if ch.kind != "discontinued":
            self.last_change = ch

    @property
    def rate(self) -> dict | None:
        """The running rate: the infusion rate or the PCA basal rate (None without one)."""
        key = "rate" if self.dosing["form"] == "infusion" else "basal_rate"
        return self.dosing.get(key)


class Administration(NamedTuple):
    """A dose as counted in totals (a tuple: a rebuild makes hundreds of thousands)."""

    at: int
    seq: int
    event_id: str
    order_id: str
    drug: str
    route: str
    kind: str
    mg: float
    effective_at: str = ""  # as charted


@dataclass(frozen=True)
class Segment:
    """A constant rate of one order over [start, end); end None = still running."""

    order_id: str
    drug: str
    route: str
    source: str  # infusion or pca_basal
    start: int
    end: int | None
    rate: float
    rate_unit: str
    weight_kg: float | None
    mg_per_h: float | None  # None: weight-based rate without a known weight


@dataclass
class Listed:
    """A line of a discharge list: what the patient goes on with after leaving."""

    event_id: str
    index: int
    drug: str
    route: str
    dosing: dict
    indication: str | None
    order_id: str | None
    note: str | None
    source: str
    start: int
    end: int | None = None
    ended_by: str | None = None

    def active_at(self, at: int) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


@dataclass
class Transition:
    kind: str
    at: int
    event_id: str
    data: dict
    active_orders_before: list[str]  # order ids active just before the transition
    active_listed_before: list[Listed]


@dataclass
class Course:
    patient_id: str
    timezone: str | None = None
    orders: dict[str, Order] = field(default_factory=dict)
    voided_orders: dict[str, Order] = field(default_factory=dict)
    administrations: list[Administration] = field(default_factory=list)
    not_given: list[dict] = field(default_factory=list)
    listed: list[Listed] = field(default_factory=list)
    home: list[dict] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    weights: list[tuple[int, float, str]] = field(default_factory=list)
    died_at: int | None = None
    horizon: int | None = None  # the latest clinical time charted (running infusions count to it)
    voided: set[str] = field(default_factory=set)
    segments: list[Segment] = field(default_factory=list)
    event_count: int = 0

    def weight_at(self, at: int) -> float | None:
        kg = None
        for t, w, _ in self.weights:
            if t > at:
                break
            kg = w
        return kg

    def active_orders(self, at: int) -> list[Order]:
        return [o for o in self.orders.values() if o.active_at(at)]

    def active_listed(self, at: int) -> list[Listed]:
        return [x for x in self.listed if x.active_at(at)]

    def drug_of(self, order_id: str) -> str | None:
        order = self.orders.get(order_id) or self.voided_orders.get(order_id)
        return order.drug if order else None


# --- the fold ---------------------------------------------------------------------------


def build_course(events: Iterable[dict], known_at: int | None = None,
                 patient_id: str | None = None, times: Sequence[int] | None = None) -> Course:
    """Fold one patient's stored events (any order) into a Course.

    known_at: epoch microseconds; events recorded after it are ignored.
    times: the events' clinical times if the caller has them already (epoch microseconds).
    """
    kept = []
    for seq, e in enumerate(events):
        if known_at is not None and instant(e["recorded_at"]) > known_at:
            continue
        kept.append((instant(e["effective_at"]) if times is None else times[seq], seq, e))
    course = Course(patient_id or (kept[0][2]["patient_id"] if kept else ""))
    course.event_count = len(kept)
    course.voided = {e["target_event_id"] for _, _, e in kept if e["type"] == "entered_in_error"}
    kept.sort(key=lambda x: (x[0], x[1]))
    folder = _Folder(course)
    for t, seq, e in kept:
        if course.horizon is None or t > course.horizon:
            course.horizon = t
        if e["event_id"] in course.voided:
            folder.remember_voided(t, seq, e)
            continue
        handler = _HANDLERS.get(e["type"])
        if handler is not None:
            handler(folder, t, seq, e)
    # A dose's drug is its order's as finally known, whatever the clinical order of facts.
    course.administrations = [administration(t, seq, e, course.drug_of(e["order_id"]))
                              for t, seq, e in folder.doses]
    course.segments = segments_of(course)
    return course


class _Folder:
    def __init__(self, course: Course):
        self.c = course
        self.doses: list[tuple[int, int, dict]] = []

    def remember_voided(self, t: int, seq: int, e: dict) -> None:
        if e["type"] == "medication_ordered":
            self.c.voided_orders[e["order_id"]] = _new_order(t, seq, e)

    def end_orders(self, t: int, kind: str, event_id: str, keep: set[str] = frozenset()) -> None:
        # An order written at the very instant of a transition belongs to the new stay
        # (as the write side's chart reads it).
        for o in self.c.orders.values():
            if o.end is None and o.start < t and o.order_id not in keep:
                o.end, o.ended_by, o.end_event_id = t, kind, event_id

    def end_listed(self, t: int, kind: str) -> None:
        for x in self.c.listed:
            if x.end is None:
                x.end, x.ended_by = t, kind


def _new_order(t: int, seq: int, e: dict) -> Order:
    return Order(e["order_id"], e["event_id"], e["drug"].lower(), e["route"].lower(), e["dosing"],
                 e.get("prescriber"), e.get("indication"), t, seq)


def _registered(f: _Folder, t, seq, e) -> None:
    if f.c.timezone is None:
        f.c.timezone = e["timezone"]


def _weight(f: _Folder, t, seq, e) -> None:
    w = e["weight"]
    f.c.weights.append((t, w["value"] * WEIGHT_TO_KG[w["unit"]], e["event_id"]))


def _home(f: _Folder, t, seq, e) -> None:
    f.c.home.append(e)


def _ordered(f: _Folder, t, seq, e) -> None:
    f.c.orders[e["order_id"]] = _new_order(t, seq, e)


def _order_event(f: _Folder, t, seq, e) -> None:
    order = f.c.orders.get(e["order_id"])
    if order is None or t < order.start or (order.end is not None and t >= order.end):
        return  # unknown here (e.g. the order is not known at K), or after the order ended
    kind = e["type"]
    if kind == "order_changed":
        fields = {k: e[k] for k in CHANGEABLE if e.get(k) is not None}
        order.changes.append(Change(t, seq, "changed", fields, e.get("reason"), e["event_id"]))
    elif kind == "infusion_rate_changed":
        order.changes.append(Change(t, seq, "rate", {"rate": e["rate"]}, e.get("reason"), e["event_id"]))
    elif kind == "order_held":
        order.changes.append(Change(t, seq, "held", {}, e.get("reason"), e["event_id"]))
    elif kind == "order_resumed":
        order.changes.append(Change(t, seq, "resumed", {}, e.get("reason"), e["event_id"]))
    elif kind == "order_discontinued":
        order.changes.append(Change(t, seq, "discontinued", {}, e.get("reason"), e["event_id"]))
        order.end, order.ended_by, order.end_reason = t, "discontinued", e.get("reason")
        order.end_event_id = e["event_id"]


def _transition(f: _Folder, t, seq, e) -> None:
    kind = e["type"]
    c = f.c
    before = [o.order_id for o in c.orders.values() if o.end is None and o.start < t]
    listed_before = [x for x in c.listed if x.end is None]
    c.transitions.append(Transition(kind, t, e["event_id"], e, before, listed_before))
    if kind in ENDING_TRANSITIONS:
        f.end_orders(t, kind, e["event_id"])
        f.end_listed(t, kind)
    elif kind == "transferred" and e.get("medication_list") is not None:
        carried = {line["order_id"] for line in e["medication_list"] if line.get("order_id")}
        f.end_orders(t, kind, e["event_id"], keep=carried)
    if kind == "discharged":
        for i, line in enumerate(e.get("medication_list") or ()):
            c.listed.append(Listed(
                e["event_id"], i, line["drug"].lower(), line["route"].lower(), line["dosing"],
                line.get("indication"), line.get("order_id"), line.get("note"), "discharge list", t,
            ))


def _died(f: _Folder, t, seq, e) -> None:
    if f.c.died_at is None:
        f.c.died_at = t
        f.end_orders(t, "died", e["event_id"])
        f.end_listed(t, "died")


def _dose_given(f: _Folder, t, seq, e) -> None:
    f.doses.append((t, seq, e))


def administration(t: int, seq: int, e: dict, drug: str | None) -> Administration:
    """A dose as counted in totals: its drug is its order's (None if the order is unknown)."""
    return Administration(t, seq, e["event_id"], e["order_id"], drug or "unknown",
                          e["route"].lower(), e["kind"], dose_mg(e["dose"]), e["effective_at"])


def _not_given(f: _Folder, t, seq, e) -> None:
    f.c.not_given.append(e)


_HANDLERS = {
    "patient_registered": _registered,
    "weight_recorded": _weight,
    "home_medication_recorded": _home,
    "medication_ordered": _ordered,
    **{k: _order_event for k in ORDER_EVENTS},
    "admitted": _transition,
    "transferred": _transition,
    "discharged": _transition,
    "readmitted": _transition,
    "died": _died,
    "dose_given": _dose_given,
    "dose_not_given": _not_given,
}


# --- rate segments ------------------------------------------------------------------------


def segments_of(course: Course) -> list[Segment]:
    out: list[Segment] = []
    for order in sorted(course.orders.values(), key=lambda o: (o.start, o.seq)):
        if order.form in ("infusion", "pca"):
            out += order_segments(order, course.weights)
    return out


def order_segments(order: Order, weights: list[tuple[int, float, str]]) -> list[Segment]:
    """Constant-rate pieces of one infusion or PCA basal over its life.

    Breakpoints: every rate change, hold, resume, route change, and, while the rate is
    weight-based, every new weight. Pieces at rate 0 or on hold are left out.
    """
    source = "infusion" if order.form == "infusion" else "pca_basal"
    state = OrderState(dict(order.dosing), order.route, False, None)
    kg = None
    points: list[tuple[int, int, Change | float]] = [(ch.at, ch.seq, ch) for ch in order.changes]
    for t, w, _ in weights:
        if t <= order.start:
            kg = w
        elif order.end is None or t < order.end:
            points.append((t, -1, w))  # a weight counts from its own instant on
    points.sort(key=lambda p: (p[0], p[1]))
    out: list[Segment] = []
    cur = order.start
    for t, _, what in points:
        if order.end is not None and t >= order.end:
            break
        if isinstance(what, Change):
            if what.kind == "discontinued":
                break
            _close(out, order, source, state, kg, cur, t)
            state.apply(what)
            cur = t
        else:
            if is_weight_based(state.rate):
                _close(out, order, source, state, kg, cur, t)
                cur = t
            kg = what
    _close(out, order, source, state, kg, cur, order.end)
    return out


def _close(out: list[Segment], order: Order, source: str, state: OrderState, kg: float | None,
           start: int, end: int | None) -> None:
    rate = state.rate
    if state.held or rate is None or rate["value"] <= 0 or (end is not None and end <= start):
        return
    weight = kg if is_weight_based(rate) else None
    out.append(Segment(order.order_id, order.drug, state.route, source, start, end,
                       rate["value"], rate["unit"], weight, rate_mg_per_h(rate, kg)))
