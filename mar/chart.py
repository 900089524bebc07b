"""The patient's chart as the write side needs it to validate a new event.

Built by folding stored event dicts (plain JSON, already validated when written).
Only the facts that validation needs are kept, so the chart stays small however long
the patient's history grows; doses are not kept. Clinical time may arrive out of
order (late charting), so every fact is stored with its clinical time and queried
"as at" a time, and corrections (entered in error) remove facts by event id.
"""
from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from .clinical_time import UTC

INPATIENT_KINDS = ("admitted", "transferred", "readmitted")
ENDS_ORDERS = ("discharged", "admitted", "readmitted")


@lru_cache(maxsize=4096)
def _t(text: str) -> datetime:
    # Cached: the checks and then the fold read the same effective_at of each new event.
    # parse_instant's rule (an offset is required) in fewer calls, as this runs twice per
    # event: Python 3.11 reads "Z", and fromisoformat's offsets are fixed, never None.
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    return value.astimezone(UTC)


@dataclass
class OrderFacts:
    order_id: str
    event_id: str
    drug: str
    route: str
    form: str
    started_at: datetime
    # (time, kind, event_id) with kind held / resumed / discontinued, kept in time order
    lifecycle: list[tuple[datetime, str, str]] = field(default_factory=list)

    def status_at(self, at: datetime, voided: set[str]) -> str:
        """FHIR-style status of the order at a clinical time."""
        if at < self.started_at:
            return "not-started"
        status = "active"
        for when, kind, event_id in self.lifecycle:
            if when > at:
                break
            if event_id in voided:
                continue
            if kind == "held":
                status = "on-hold"
            elif kind == "resumed" and status == "on-hold":
                status = "active"
            elif kind == "discontinued":
                return "stopped"
        return status


@dataclass
class Chart:
    patient_id: str
    version: int = 0  # stream version of the last folded event
    registered_id: str | None = None
    timezone: str | None = None
    weights: list[tuple[datetime, float, str]] = field(default_factory=list)
    transitions: list[tuple[datetime, str, str]] = field(default_factory=list)
    deaths: list[tuple[datetime, str]] = field(default_factory=list)
    orders: dict[str, OrderFacts] = field(default_factory=dict)
    voided: set[str] = field(default_factory=set)

    # --- queries ------------------------------------------------------------------

    @property
    def registered(self) -> bool:
        return self.registered_id is not None and self.registered_id not in self.voided

    def weight_kg_at(self, at: datetime) -> float | None:
        for when, kg, event_id in reversed(self.weights):
            if when <= at and event_id not in self.voided:
                return kg
        return None

    def encounter_at(self, at: datetime) -> str | None:
        """The last transition kind at or before a clinical time (None before any)."""
        for when, kind, event_id in reversed(self.transitions):
            if when <= at and event_id not in self.voided:
                return kind
        return None

    def inpatient_at(self, at: datetime) -> bool:
        return self.encounter_at(at) in INPATIENT_KINDS

    def ever_discharged_before(self, at: datetime) -> bool:
        return any(
            kind == "discharged" and when <= at and eid not in self.voided
            for when, kind, eid in self.transitions
        )

    def died_at(self) -> datetime | None:
        if not self.deaths:
            return None
        live = [when for when, event_id in self.deaths if event_id not in self.voided]
        return min(live) if live else None

    def ended_by_transition(self, facts: OrderFacts, at: datetime) -> tuple[datetime, str] | None:
        """The discharge, admission or readmission after an order's start, at or before `at`.

        Those transitions end every active order (docs/event-format.md); a transfer's
        medication list is not kept here, so transfers are not checked.
        """
        # Only the transitions since this order's start can end it (the list is in time
        # order; a long history has many stays): usually there is none yet.
        transitions = self.transitions
        if not transitions or transitions[-1][0] <= facts.started_at:
            return None
        first = bisect.bisect_right(transitions, facts.started_at, key=lambda t: t[0])
        for when, kind, event_id in itertools.islice(transitions, first, None):
            if when > at:
                break
            if kind in ENDS_ORDERS and event_id not in self.voided:
                return when, kind
        return None

    def order(self, order_id: str) -> OrderFacts | None:
        facts = self.orders.get(order_id)
        if facts is None or facts.event_id in self.voided:
            return None
        return facts

    # --- the fold -----------------------------------------------------------------

    def apply(self, event: dict, version: int | None = None) -> None:
        handler = _APPLY.get(event["type"])
        if handler is not None:
            handler(self, event)
        self.version = version if version is not None else self.version + 1

    def copy(self) -> "Chart":
        """An independent chart (the fold appends to its lists; the times and ids are immutable)."""
        chart = Chart(self.patient_id, self.version, self.registered_id, self.timezone, list(self.weights),
                      list(self.transitions), list(self.deaths), voided=set(self.voided))
        for order_id, o in self.orders.items():
            chart.orders[order_id] = OrderFacts(o.order_id, o.event_id, o.drug, o.route, o.form, o.started_at,
                                                list(o.lifecycle))
        return chart

    # --- snapshots ----------------------------------------------------------------

    def to_dict(self) -> dict:
        iso = datetime.isoformat
        return {
            "patient_id": self.patient_id,
            "version": self.version,
            "registered_id": self.registered_id,
            "timezone": self.timezone,
            "weights": [(iso(t), kg, e) for t, kg, e in self.weights],
            "transitions": [(iso(t), k, e) for t, k, e in self.transitions],
            "deaths": [(iso(t), e) for t, e in self.deaths],
            "orders": [
                {
                    "order_id": o.order_id, "event_id": o.event_id, "drug": o.drug,
                    "route": o.route, "form": o.form, "started_at": iso(o.started_at),
                    "lifecycle": [(iso(t), k, e) for t, k, e in o.lifecycle],
                }
                for o in self.orders.values()
            ],
            "voided": sorted(self.voided),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Chart":
        p = datetime.fromisoformat
        chart = cls(
            patient_id=data["patient_id"],
            version=data["version"],
            registered_id=data["registered_id"],
            timezone=data["timezone"],
            weights=[(p(t), kg, e) for t, kg, e in data["weights"]],
            transitions=[(p(t), k, e) for t, k, e in data["transitions"]],
            deaths=[(p(t), e) for t, e in data["deaths"]],
            voided=set(data["voided"]),
        )
        for o in data["orders"]:
            chart.orders[o["order_id"]] = OrderFacts(
                o["order_id"], o["event_id"], o["drug"], o["route"], o["form"],
                p(o["started_at"]), [(p(t), k, e) for t, k, e in o["lifecycle"]],
            )
        return chart


def _registered(chart: Chart, e: dict) -> None:
    chart.registered_id = e["event_id"]
    chart.timezone = e["timezone"]


def _weight(chart: Chart, e: dict) -> None:
    from .units import to_kg

    w = e["weight"]
    bisect.insort(chart.weights, (_t(e["effective_at"]), to_kg(w["value"], w["unit"]), e["event_id"]))


def _transition(chart: Chart, e: dict) -> None:
    bisect.insort(chart.transitions, (_t(e["effective_at"]), e["type"], e["event_id"]))


def _died(chart: Chart, e: dict) -> None:
    chart.deaths.append((_t(e["effective_at"]), e["event_id"]))


def _ordered(chart: Chart, e: dict) -> None:
    chart.orders[e["order_id"]] = OrderFacts(
        e["order_id"], e["event_id"], e["drug"].lower(), e["route"].lower(),
        e["dosing"]["form"], _t(e["effective_at"]),
    )


def _lifecycle(kind: str):
    def apply(chart: Chart, e: dict) -> None:
        facts = chart.orders.get(e["order_id"])
        if facts is not None:
            bisect.insort(facts.lifecycle, (_t(e["effective_at"]), kind, e["event_id"]))

    return apply


def _route_change(chart: Chart, e: dict) -> None:
    facts = chart.orders.get(e["order_id"])
    if facts is not None and e.get("route"):
        facts.route = e["route"].lower()


def _void(chart: Chart, e: dict) -> None:
    chart.voided.add(e["target_event_id"])


_APPLY = {
    "patient_registered": _registered,
    "weight_recorded": _weight,
    "admitted": _transition,
    "transferred": _transition,
    "discharged": _transition,
    "readmitted": _transition,
    "died": _died,
    "medication_ordered": _ordered,
    "order_held": _lifecycle("held"),
    "order_resumed": _lifecycle("resumed"),
    "order_discontinued": _lifecycle("discontinued"),
    "order_changed": _route_change,
    "entered_in_error": _void,
}
