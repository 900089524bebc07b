"""What every rule works with: the alert itself, and the context a rule reads (one patient).

An alert's id is a digest of its rule, its patient and the ids of the events (or the local
day) that define it, so the same record always gives the same ids: an acknowledgement
(an `alert_acknowledged` event naming the id) still finds its alert after a rebuild.
"""
from __future__ import annotations

import hashlib
from bisect import bisect_right
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from mar.catalog import Catalog, Frequency

from ..course import Administration, Course, Listed, Order, OrderState
from ..mme import MmeTable
from ..timeline import clock, iso
from .config import RuleSettings

# The id prefix a person sees; the digest after it makes the id unique and stable.
PREFIX = {
    "unreconciled_stop": "omission",
    "admission_discrepancy": "admission",
    "mme_threshold": "mme",
    "mme_rise": "mme-rise",
    "opioid_benzodiazepine": "opioid-benzo",
    "duplicate_opioid": "dup-opioid",
    "adjuvant_taper": "taper",
    "weight_missing": "weight",
    "as_needed_too_soon": "prn-early",
    "as_needed_daily_max": "prn-max",
    "pca_limit": "pca-limit",
}


def alert_id(rule: str, patient_id: str, keys: tuple) -> str:
    text = "\x1f".join([rule, patient_id, *map(str, keys)])
    return f"{PREFIX[rule]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Resolution:
    """What put right the situation an alert pointed at, found in the record itself: a
    medication dropped at a transition ordered again, a combination that stopped running
    together. Evidence: the events that did it."""

    at: int  # clinical time, epoch microseconds
    reason: str
    evidence: tuple[str, ...] = ()


@dataclass
class Alert:
    id: str
    patient_id: str
    rule: str
    severity: str
    drug: str
    at: int  # clinical time, epoch microseconds
    message: str
    evidence: list[str]
    status: str = "open"
    acknowledged: dict | None = None  # {"by", "at", "reason", "event_id"} once acknowledged
    resolution: Resolution | None = None  # set by the rule when the record has put it right

    def to_json(self, tz: ZoneInfo) -> dict:
        r = self.resolution
        return {"id": self.id, "patient_id": self.patient_id, "rule": self.rule, "severity": self.severity,
                "drug": self.drug, "at": iso(self.at, tz), "message": self.message,
                "evidence": list(self.evidence), "status": self.status, "acknowledged": self.acknowledged,
                "resolved": None if r is None else {"at": iso(r.at, tz), "reason": r.reason,
                                                    "evidence": list(r.evidence)}}


@dataclass
class Doses:
    """The doses given that the rules read, in clinical order, as `Course.administrations`
    holds them: those of opioids (MME, tapers), and those of as-needed and PCA orders (per
    order). The others (most scheduled doses) are never made into objects."""

    opioid: list[Administration] = field(default_factory=list)
    as_needed: dict[str, list[Administration]] = field(default_factory=dict)  # as-needed doses and boluses
    pca: dict[str, list[Administration]] = field(default_factory=dict)  # demand doses and boluses


@dataclass
class Context:
    """One patient's record as the rules read it (everything already filtered by --known-at/--at).

    `course` is folded from every event but the doses (its `administrations` is empty): the
    doses the rules read are in `doses`."""

    course: Course
    events: list[tuple[int, int, dict]]  # (clinical time, store order, stored event), in clinical order
    tz: ZoneInfo
    catalog: Catalog
    mme_table: MmeTable
    settings: RuleSettings
    until: int  # the clinical time the record is read up to: running infusions count to here
    doses: Doses = field(default_factory=Doses)
    _cache: dict = field(default_factory=dict)
    _opioid: dict = field(default_factory=dict)
    _frequencies: dict = field(default_factory=dict)
    _states: dict = field(default_factory=dict)
    _by_type: dict | None = None

    @property
    def patient_id(self) -> str:
        return self.course.patient_id

    def alert(self, rule: str, keys: tuple, drug: str, at: int, message: str, evidence,
              severity: str | None = None, resolution: Resolution | None = None) -> Alert:
        sev = severity or self.settings.rule(rule)["severity"]
        return Alert(alert_id(rule, self.patient_id, keys), self.patient_id, rule, sev, drug, at, message,
                     _unique(evidence), resolution=resolution)

    def after(self, at: int, later: int) -> str:
        """How long after: '16 days', '5 h 30 min' (the gap a resolution closed)."""
        minutes = (later - at) // 60_000_000
        if minutes >= 2 * 24 * 60:
            return f"{minutes // (24 * 60)} days"
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest:02d} min" if hours else f"{rest} min"

    def local(self, at: int) -> str:
        """A clinical time as a nurse reads it: local date and clock time (YYYY-MM-DD HH:MM)."""
        text = clock(self.tz).iso(at)
        return f"{text[:10]} {text[11:16]}"

    def is_opioid(self, drug: str) -> bool:
        known = self._opioid
        if drug not in known:
            d = self.catalog.drug(drug)
            known[drug] = d is not None and d.is_opioid
        return known[drug]

    def in_class(self, drug: str, classes) -> bool:
        d = self.catalog.drug(drug)
        return d is not None and any(d.is_a(c) for c in classes)

    def frequency(self, text: str) -> Frequency | None:
        known = self._frequencies
        if text not in known:
            known[text] = self.catalog.frequency(text)
        return known[text]

    def by_type(self, kind: str) -> list[tuple[int, dict]]:
        """(clinical time, event) of one type that count (not entered in error), in clinical order."""
        index = self._by_type
        if index is None:
            index = self._by_type = {}
            voided = self.course.voided
            for t, _, e in self.events:
                kind_of = e["type"]
                if kind_of != "dose_given" and e["event_id"] not in voided:
                    found = index.get(kind_of)
                    if found is None:
                        index[kind_of] = [(t, e)]
                    else:
                        found.append((t, e))
        return index.get(kind, [])

    def state_at(self, order: Order, at: int) -> OrderState:
        """`order.state_at(at)` (not to be changed by the caller), from the states after each
        change, found by bisection: rules ask it for every dose."""
        states = self._states.get(order.order_id)
        if states is None:
            states = self._states[order.order_id] = _states(order)
        times, after = states
        return after[bisect_right(times, at)]

    def states(self, order: Order) -> tuple[list[int], list[OrderState]]:
        """The instants of the order's changes before its end, and its state before the first
        and after each (not to be changed by the caller)."""
        self.state_at(order, order.start)
        return self._states[order.order_id]

    def constant_state(self, order: Order) -> OrderState | None:
        """The order's state if no change applies to it (`state_at` is the same at any time), else None."""
        self.state_at(order, order.start)
        times, after = self._states[order.order_id]
        return None if times else after[0]


def _states(order: Order) -> tuple[list[int], list[OrderState]]:
    """The instants of an order's changes (those before its end) and its state before the
    first and after each, as `Order.state_at` applies them."""
    state = OrderState(dict(order.dosing), order.route, False, None)
    times, after = [], [state]
    for ch in order.changes:
        if order.end is not None and ch.at >= order.end:
            break
        state = OrderState(dict(state.dosing), state.route, state.held, state.last_change)
        state.apply(ch)
        times.append(ch.at)
        after.append(state)
    return times, after


def _unique(ids) -> list[str]:
    seen, out = set(), []
    for i in ids:
        if i and i not in seen:
            seen.add(i)
            out.append(i)
    return out


def order_label(order: Order, at: int) -> str:
    """`memantine po 10 mg bid (order memantine-po-1)` as the order stood at `at`."""
    state = order.state_at(min(at, order.end - 1) if order.end is not None else at)
    return f"{order.drug} {state.route} {_dosing(state.dosing)} (order {order.order_id})"


def listed_label(x: Listed) -> str:
    return f"{x.drug} {x.route} {_dosing(x.dosing)} (on the {x.source})"


def dosing_label(drug: str, route: str, dosing: dict) -> str:
    return f"{drug} {route} {_dosing(dosing)}"


def _dosing(dosing: dict) -> str:
    # mar.history imports the event store (eventsourcing): only for the labels of alerts raised
    from mar.history import describe_dosing

    return describe_dosing(dosing)
