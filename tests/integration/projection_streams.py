"""Random valid event streams for projection tests, built from a list of "intentions".

Each intention (action, a, b, x) becomes at most one input event that the write side
accepts: the builder tracks just enough of each patient's state (admitted, orders, holds,
death, clock) and skips an intention that would not fit. Hypothesis shrinks the list.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

START = datetime(2020, 3, 1, 0, 0, tzinfo=timezone.utc)  # the US spring DST change is inside
ZONES = ["America/Los_Angeles", "Europe/London", "Asia/Kolkata"]

DRUGS = {  # drug -> (route, form), all in the shipped catalog
    "hydromorphone": ("iv", ("infusion", "pca", "as_needed")),
    "ketamine": ("iv", ("infusion",)),
    "morphine": ("iv", ("pca", "infusion", "scheduled")),
    "methadone": ("po", ("scheduled",)),
    "oxycodone": ("po", ("as_needed",)),
    "memantine": ("po", ("scheduled",)),
    "lorazepam": ("iv", ("scheduled", "as_needed")),
}
ACTIONS = ("order", "order", "dose", "dose", "dose", "dose", "dose", "rate", "rate", "change", "hold",
           "resume", "stop", "weight", "correct", "correct", "transfer", "discharge", "readmit", "not_given",
           "late_dose", "die", "wait")


@dataclass
class OrderState:
    order_id: str
    drug: str
    route: str
    form: str
    start: datetime
    last: datetime  # latest lifecycle time (start, hold, resume)
    held: bool = False
    stopped: bool = False
    weight_based: bool = False


@dataclass
class PatientState:
    patient_id: str
    clock: datetime
    admitted: bool = False
    discharged_once: bool = False
    dead: bool = False
    orders: list[OrderState] = field(default_factory=list)
    correctable: list[str] = field(default_factory=list)
    corrected: set[str] = field(default_factory=set)
    n: int = 0


def _t(d: datetime) -> str:
    return d.isoformat()


def q(v: float, unit: str) -> dict:
    return {"value": v, "unit": unit}


class StreamBuilder:
    def __init__(self, patients: int = 2):
        self.patients = [PatientState(f"pt-{i}", START + timedelta(minutes=7 * i)) for i in range(patients)]
        self.events: list[dict] = []
        for i, p in enumerate(self.patients):
            self._emit(p, {"type": "patient_registered", "timezone": ZONES[i % len(ZONES)]})
            self._emit(p, {"type": "weight_recorded", "weight": q(70 + 5 * i, "kg")})
            self._emit(p, {"type": "admitted", "location": "ward"})
            p.admitted = True

    def _emit(self, p: PatientState, body: dict, at: datetime | None = None, late: timedelta | None = None,
              correctable: bool = True) -> dict:
        p.n += 1
        event = {"patient_id": p.patient_id, "effective_at": _t(at or p.clock),
                 "idempotency_key": f"{p.patient_id}/{p.n}", **body}
        if late:
            event["recorded_at"] = _t((at or p.clock) + late)
        else:
            event["recorded_at"] = _t(p.clock)
        self.events.append(event)
        if correctable:
            p.correctable.append(event["idempotency_key"])
        return event

    def add(self, action: int, a: int, b: int, x: float) -> None:
        p = self.patients[a % len(self.patients)]
        if p.dead:
            return
        p.clock += timedelta(minutes=5 + (b % 300))
        getattr(self, "_" + ACTIONS[action % len(ACTIONS)])(p, a, b, x)

    def _live(self, p: PatientState, b: int, forms=None) -> OrderState | None:
        live = [o for o in p.orders if not o.stopped and not o.held and (forms is None or o.form in forms)]
        return live[b % len(live)] if live else None

    def _order(self, p, a, b, x):
        drug = sorted(DRUGS)[b % len(DRUGS)]
        route, forms = DRUGS[drug]
        form = forms[a % len(forms)]
        if form == "scheduled":
            dosing = {"form": "scheduled", "dose": q(round(1 + x * 8, 2), "mg"), "frequency": ["bid", "tid", "q8h"][b % 3]}
        elif form == "as_needed":
            dosing = {"form": "as_needed", "dose": q(round(1 + x * 8, 2), "mg"), "frequency": "q4h"}
        elif form == "infusion":
            weight_based = drug == "ketamine" or b % 2 == 0
            dosing = {"form": "infusion", "rate": q(round(10 + x * 50, 1), "mcg/kg/h") if weight_based
                      else q(round(0.5 + x * 5, 2), "mg/h")}
        else:
            dosing = {"form": "pca", "demand_dose": q(1.2, "mg"), "lockout_minutes": 6}
            if b % 2:
                dosing["basal_rate"] = q(round(0.5 + x, 2), "mg/h")
        order_id = f"o{len(p.orders) + 1}"
        self._emit(p, {"type": "medication_ordered", "order_id": order_id, "drug": drug, "route": route,
                       "dosing": dosing, "prescriber": "dr.p"})
        p.orders.append(OrderState(order_id, drug, route, form, p.clock, p.clock,
                                   weight_based=form == "infusion" and dosing["rate"]["unit"] == "mcg/kg/h"))

    def _dose(self, p, a, b, x, at=None, late=None):
        o = self._live(p, b)
        if o is None:
            return
        kind = {"scheduled": "scheduled", "as_needed": "as_needed", "infusion": "bolus",
                "pca": "pca_demand" if a % 3 else "bolus"}[o.form]
        value = 1.2 if o.form == "pca" and kind == "pca_demand" else round(0.5 + x * 8, 2)
        when = at or p.clock
        if when <= o.last:
            when = p.clock
        self._emit(p, {"type": "dose_given", "order_id": o.order_id, "dose": q(value, "mg"),
                       "route": o.route, "kind": kind}, at=when, late=late)

    def _late_dose(self, p, a, b, x):
        # charted hours after it was given (knowledge time) and back-dated in clinical time
        back = p.clock - timedelta(minutes=1 + a % 90)
        self._dose(p, a, b, x, at=back, late=timedelta(hours=1 + b % 6))
        p.clock += timedelta(hours=1 + b % 6)  # later events are charted after it

    def _rate(self, p, a, b, x):
        o = self._live(p, b, ("infusion", "pca"))
        if o is None:
            return
        if o.form == "pca" or not o.weight_based:
            rate = q(0 if a % 5 == 0 else round(0.5 + x * 4, 2), "mg/h")
        else:
            rate = q(0 if a % 5 == 0 else round(5 + x * 50, 1), "mcg/kg/h")
        self._emit(p, {"type": "infusion_rate_changed", "order_id": o.order_id, "rate": rate})

    def _change(self, p, a, b, x):
        o = self._live(p, b)
        if o is None:
            return
        body = {"type": "order_changed", "order_id": o.order_id, "reason": "titration"}
        if o.form in ("scheduled", "as_needed"):
            body["dose"] = q(round(1 + x * 8, 2), "mg")
        elif o.form == "infusion":
            body["rate"] = q(round(5 + x * 40, 1), "mcg/kg/h") if o.weight_based else q(round(0.5 + x, 2), "mg/h")
        else:
            body["basal_rate"] = q(round(x, 2), "mg/h")
        self._emit(p, body)

    def _hold(self, p, a, b, x):
        o = self._live(p, b)
        if o is not None:
            o.held, o.last = True, p.clock
            self._emit(p, {"type": "order_held", "order_id": o.order_id, "reason": "sedated"})

    def _resume(self, p, a, b, x):
        held = [o for o in p.orders if o.held and not o.stopped]
        if held:
            o = held[b % len(held)]
            o.held, o.last = False, p.clock
            self._emit(p, {"type": "order_resumed", "order_id": o.order_id})

    def _stop(self, p, a, b, x):
        live = [o for o in p.orders if not o.stopped]
        if live and b % 2:
            o = live[b % len(live)]
            o.stopped, o.last = True, p.clock
            self._emit(p, {"type": "order_discontinued", "order_id": o.order_id, "reason": "done"})

    def _weight(self, p, a, b, x):
        self._emit(p, {"type": "weight_recorded", "weight": q(round(50 + x * 60, 1), "kg")})

    def _not_given(self, p, a, b, x):
        o = self._live(p, b)
        if o is not None:
            self._emit(p, {"type": "dose_not_given", "order_id": o.order_id, "status_reason": "refused"})

    def _correct(self, p, a, b, x):
        # Transitions are never voided here: the builder would lose track of admission.
        first_weight = f"{p.patient_id}/2"  # weight-based rates were checked against it
        choices = [k for k in p.correctable if k not in p.corrected and k != first_weight and self._kind(k) in
                   ("dose_given", "infusion_rate_changed", "weight_recorded", "order_changed", "dose_not_given",
                    "medication_ordered", "order_held", "order_resumed", "order_discontinued")]
        if a % 2:  # every other correction is of an order's life, not of a dose
            choices = [k for k in choices if self._kind(k) not in ("dose_given", "dose_not_given")]
        if not choices:
            return
        target = choices[b % len(choices)]
        p.corrected.add(target)
        self._emit(p, {"type": "entered_in_error", "target_event_id": target, "reason": "wrong entry"},
                   correctable=False)
        event = self._event(target)
        order = next((o for o in p.orders if o.order_id == event.get("order_id")), None)
        if order is None:
            return
        # keep the builder's view of the order no looser than the write side's
        if event["type"] in ("medication_ordered", "order_discontinued"):
            order.stopped = True  # gone (or back on, but left alone)
        elif event["type"] in ("order_held", "order_resumed"):
            marks = [e["type"] for e in self.events if e.get("order_id") == order.order_id
                     and e["patient_id"] == p.patient_id and e["type"] in ("order_held", "order_resumed")
                     and e["idempotency_key"] not in p.corrected]
            order.held, order.last = bool(marks) and marks[-1] == "order_held", p.clock

    def _event(self, key: str) -> dict:
        return next(e for e in self.events if e.get("idempotency_key") == key)

    def _kind(self, key: str) -> str:
        return next(e["type"] for e in self.events if e.get("idempotency_key") == key)

    def _transfer(self, p, a, b, x):
        if not p.admitted or b % 3:
            return
        body = {"type": "transferred", "to_location": f"ward {b % 5}"}
        if a % 2:
            keep = [o for o in p.orders if not o.stopped and o.form in ("scheduled", "as_needed")][: 1 + b % 2]
            body["medication_list"] = [
                {"drug": o.drug, "route": o.route, "order_id": o.order_id,
                 "dosing": {"form": "scheduled", "dose": q(5, "mg"), "frequency": "bid"}}
                for o in keep if o.drug in ("methadone", "memantine")]
        self._emit(p, body)

    def _discharge(self, p, a, b, x):
        if not p.admitted or b % 4:
            return
        lines = [{"drug": "memantine", "route": "po", "dosing": {"form": "scheduled", "dose": q(10, "mg"),
                                                                  "frequency": "bid"}}] if a % 2 else []
        self._emit(p, {"type": "discharged", "destination": "home", "medication_list": lines})
        p.admitted, p.discharged_once = False, True
        self._end_all(p)

    def _end_all(self, p):
        for o in p.orders:
            o.stopped = True

    def _readmit(self, p, a, b, x):
        if p.admitted or not p.discharged_once:
            return
        self._emit(p, {"type": "readmitted", "location": "ward"})
        p.admitted = True
        self._end_all(p)

    def _wait(self, p, a, b, x):
        p.clock += timedelta(hours=b % 40)  # a quiet night: the next event is on another day

    def _die(self, p, a, b, x):
        if b % 25:
            return  # rarely
        self._emit(p, {"type": "died"})
        p.dead = True


def build_stream(intentions, patients: int = 2) -> list[dict]:
    builder = StreamBuilder(patients)
    for action, a, b, x in intentions:
        builder.add(action, a, b, x)
    return builder.events
