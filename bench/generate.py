"""Deterministic synthetic hospital for benchmarks: mar events as JSON Lines.

Modes:
  --events E     a hospital with enough patients for E events, cut at exactly E events in
                 charting order (the hospital as it stood at that moment; patients still
                 in hospital at the cut have no discharge yet)
  --patients N   N patients arriving over --days D days, every history complete
  --one-patient E  one patient (--patient-id, default long-001) with a long history of
                 exactly E events: repeated long stays on PCA, for record-latency runs

What each patient has: registration (IANA time zone, mostly America/Los_Angeles, a few
with half-hour offsets), weights (kg, some in lb), admission, home medications, scheduled
oral drugs with their doses (some refused, missed or held), as-needed orders and doses
(mostly respecting the minimum interval, about 3% early), continuous infusions with rate
changes and stops, weight-based drips (mcg/kg/h, mcg/kg/min), PCA with basal rate and
demand doses (lockout and limit respected), holds and resumes, order changes,
discontinuations, transfers (some with a medication list), discharges with medication
lists (documented stops, and about 5% of orders silently left off), readmissions, a few
deaths, corrections (entered_in_error of duplicate or wrong charting, about 1% of doses)
and late charting (about 4% of doses charted 1-8 h late). Every event carries an
idempotency key (PATIENT/NNNNNN), recorded_at and recorded_by, and passes mar's
validation (drugs, routes and frequencies from mar/reference/drugs.json).

Output is in charting order (recorded_at), patients interleaved, so any prefix of a file
is itself a valid file. The same arguments always give the same bytes: one random
generator per patient, seeded from --seed and the patient id. Two files with the same
--prefix share patient ids: give different prefixes to files meant for the same store.

Library use: `hospital(patients=None, days=30, seed=1, events=None, start=..., prefix="p")`
and `one_patient(events, seed=1, patient_id="long-001")` give event dicts;
`write_jsonl(events, path)` writes them.
"""
from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator
from zoneinfo import ZoneInfo

import orjson

MIN = 60
HOUR = 3600
DAY = 86400
DEFAULT_START = "2018-01-01"

# (zone, share of patients): the hospital's own zone for most, a few visitors,
# including half-hour offsets.
ZONES = [("America/Los_Angeles", 0.85), ("America/New_York", 0.06), ("Europe/London", 0.04),
         ("Asia/Kolkata", 0.03), ("Australia/Adelaide", 0.02)]

# local clock hours of scheduled administrations
SCHEDULE_HOURS = {"daily": [9], "qhs": [21], "bid": [9, 21], "q12h": [9, 21], "tid": [6, 14, 22],
                  "q8h": [6, 14, 22], "qid": [6, 12, 18, 23], "q6h": [0, 6, 12, 18]}
INTERVAL_H = {"q1h": 1, "q2h": 2, "q3h": 3, "q4h": 4, "q6h": 6, "q8h": 8}

# drug, route, dose, unit, frequency
SCHEDULED = [
    ("acetaminophen", "po", 1000, "mg", "q6h"), ("gabapentin", "po", 300, "mg", "tid"),
    ("gabapentin", "po", 600, "mg", "tid"), ("memantine", "po", 10, "mg", "bid"),
    ("naproxen", "po", 500, "mg", "bid"), ("methadone", "po", 10, "mg", "q8h"),
    ("pregabalin", "po", 75, "mg", "bid"), ("clonazepam", "po", 0.5, "mg", "bid"),
    ("oxycodone", "po", 10, "mg", "q12h"), ("ketorolac", "iv", 15, "mg", "q6h"),
    ("tapentadol", "po", 50, "mg", "qid"), ("buprenorphine", "sl", 2, "mg", "daily"),
]
# drug, route, dose, unit, frequency, daily maximum (value, unit) or None
AS_NEEDED = [
    ("oxycodone", "po", 5, "mg", "q4h", (30, "mg")), ("hydromorphone", "iv", 0.5, "mg", "q3h", None),
    ("lorazepam", "po", 0.5, "mg", "q6h", (2, "mg")), ("acetaminophen", "po", 650, "mg", "q6h", (3, "g")),
    ("morphine", "iv", 2, "mg", "q2h", None), ("ibuprofen", "po", 400, "mg", "q6h", (2400, "mg")),
    ("tramadol", "po", 50, "mg", "q6h", (400, "mg")), ("fentanyl", "iv", 25, "mcg", "q1h", None),
    ("hydromorphone", "po", 2, "mg", "q4h", None),
]
# drug, rate low, rate high, unit, bolus (value, unit)
INFUSIONS = [("morphine", 1, 4, "mg/h", (2, "mg")), ("hydromorphone", 0.5, 3, "mg/h", (0.5, "mg")),
             ("midazolam", 1, 4, "mg/h", None), ("fentanyl", 25, 100, "mcg/h", (25, "mcg"))]
DRIPS = [("ketamine", 50, 300, "mcg/kg/h", (10, "mg")), ("fentanyl", 0.5, 2, "mcg/kg/h", None),
         ("midazolam", 0.5, 2, "mcg/kg/min", None)]
# drug, demand dose, unit, lockout min, basal (value) or 0, limit value, limit hours
PCAS = [("hydromorphone", 0.2, "mg", 10, 0.2, 3, 1), ("morphine", 1, "mg", 8, 1, 30, 4),
        ("fentanyl", 20, "mcg", 6, 20, 200, 1), ("hydromorphone", 0.4, "mg", 6, 0, 4, 1)]
HOME = [("memantine", "po", 10, "mg", "bid"), ("gabapentin", "po", 300, "mg", "tid"),
        ("methadone", "po", 10, "mg", "q8h"), ("naproxen", "po", 500, "mg", "bid"),
        ("clonazepam", "po", 0.5, "mg", "bid"), ("pregabalin", "po", 75, "mg", "bid"),
        ("oxycodone", "po", 10, "mg", "q12h")]
HOME_PRN = [("oxycodone", "po", 5, "mg", "q4h"), ("acetaminophen", "po", 650, "mg", "q6h"),
            ("tramadol", "po", 50, "mg", "q6h")]
WARDS = ["4 West", "5 East", "6 North", "Oncology", "Orthopedics"]
DESTINATIONS = ["home", "home with home health", "skilled nursing facility", "rehabilitation facility"]


@dataclass
class Profile:
    """How a patient's stays look. `long` is the one-patient stress profile."""

    stay_days: tuple[int, int] = (2, 10)
    gap_days: tuple[int, int] = (3, 40)
    readmit: float = 0.2
    die: float = 0.02
    pca: float = 0.25
    infusion: float = 0.3
    drip: float = 0.2
    demands_per_hour: tuple[float, float] = (0.5, 3.0)
    pca_days: tuple[float, float] = (1.0, 4.0)


HOSPITAL = Profile()
LONG = Profile(stay_days=(20, 45), gap_days=(3, 10), readmit=1.0, die=0.0, pca=1.0,
               infusion=0.6, drip=0.5, demands_per_hour=(1.0, 3.0), pca_days=(6.0, 12.0))


def q(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit}


@dataclass
class Order:
    order_id: str
    drug: str
    route: str
    dosing: dict
    start: int
    end: int  # discontinued at, or end of stay (the transition ends it)
    discontinued: bool = False
    hold: tuple[int, int] | None = None


@dataclass
class Patient:
    """Builds one patient's events; times are UTC epoch seconds until written."""

    pid: str
    rng: random.Random
    tz: ZoneInfo
    profile: Profile
    events: list = field(default_factory=list)  # (recorded, seq, dict)
    seq: int = 0
    weight_kg: float = 70.0  # the patient's usual weight; each weighing varies around it
    home: list = field(default_factory=list)

    # --- writing events ---------------------------------------------------------------

    def iso(self, t: int) -> str:
        return datetime.fromtimestamp(t, self.tz).isoformat()

    def emit(self, event_type: str, at: int, by: str, recorded: int | None = None, /, **fields) -> str:
        """Append an event; structural events are charted at their clinical time."""
        self.seq += 1
        key = f"{self.pid}/{self.seq:06d}"
        rec = at if recorded is None else recorded
        event = {"type": event_type, "patient_id": self.pid, "effective_at": self.iso(at),
                 "recorded_at": self.iso(rec), "recorded_by": by, "idempotency_key": key, **fields}
        self.events.append((rec, self.seq, event))
        return key

    def charted(self, at: int) -> int:
        """When a nurse charts an administration: mostly at once, sometimes hours late."""
        r = self.rng.random()
        if r < 0.04:
            return at + self.rng.randint(65 * MIN, 8 * HOUR)
        return at + self.rng.randint(0, 15 * MIN)

    def nurse(self) -> str:
        return f"rn.{self.rng.randint(1, 400):03d}"

    def prescriber(self) -> str:
        return f"dr.{self.rng.randint(1, 120):03d}"

    # --- a whole life -------------------------------------------------------------------

    def life(self, arrival: int, until_events: int | None = None) -> None:
        rng, p = self.rng, self.profile
        self.weight_kg = round(rng.uniform(45, 140), 1)
        self.emit("patient_registered", arrival - 10 * MIN, "registration",
                  timezone=self.tz.key)
        start, stay = arrival, 1
        while True:
            days = rng.randint(*p.stay_days)
            end = self.local(start + days * DAY, rng.randint(10, 15))
            last = until_events is None and rng.random() >= p.readmit
            dies = last and rng.random() < p.die
            self.stay(stay, start, end, readmission=stay > 1, dies=dies)
            if last or (until_events is not None and len(self.events) >= until_events):
                return
            start = self.local(end + rng.randint(*p.gap_days) * DAY, rng.randint(8, 20))
            stay += 1

    def local(self, t: int, hour: int) -> int:
        """The instant of a local clock hour on the local day of t."""
        d = datetime.fromtimestamp(t, self.tz)
        return int(d.replace(hour=hour, minute=self.rng.randint(0, 59), second=0).timestamp())

    def stay(self, n: int, start: int, end: int, readmission: bool, dies: bool) -> None:
        rng = self.rng
        if readmission:
            self.emit("readmitted", start, self.nurse(), location=rng.choice(WARDS),
                      reason="pain control", from_facility=rng.choice(["home", "skilled nursing facility"]))
        else:
            self.emit("admitted", start, self.nurse(), location=rng.choice(WARDS), reason="pain control")
        self.weight(start + 5 * MIN)
        if not readmission:
            self.home_medications(start + 15 * MIN)
        orders = self.write_orders(n, start, end)
        t = start + DAY
        while t < end - 12 * HOUR:  # re-weighed every few days
            self.weight(t)
            t += rng.randint(2, 4) * DAY
        transfer = None
        if rng.random() < 0.4 and end - start > 2 * DAY:
            transfer = rng.randint(start + 12 * HOUR, end - 12 * HOUR)
            self.transfer(transfer, orders)
        if dies:
            self.emit("died", end, self.prescriber())
        else:
            self.discharge(end, orders)

    def weight(self, at: int) -> None:
        kg = round(self.weight_kg * self.rng.uniform(0.97, 1.03), 1)
        w = q(round(kg / 0.45359237, 1), "lb") if self.rng.random() < 0.1 else q(kg, "kg")
        self.emit("weight_recorded", at, self.nurse(), weight=w)

    def home_medications(self, at: int) -> None:
        rng = self.rng
        source = rng.choice(["patient", "family", "pharmacy", "prior record"])
        for drug, route, dose, unit, freq in rng.sample(HOME, rng.randint(1, 4)):
            dosing = {"form": "scheduled", "dose": q(dose, unit), "frequency": freq}
            self.home.append((drug, route, dosing))
            self.emit("home_medication_recorded", at, self.nurse(), drug=drug, route=route,
                      dosing=dosing, source=source)
        if rng.random() < 0.6:
            drug, route, dose, unit, freq = rng.choice(HOME_PRN)
            dosing = {"form": "as_needed", "dose": q(dose, unit), "frequency": freq}
            self.home.append((drug, route, dosing))
            self.emit("home_medication_recorded", at, self.nurse(), drug=drug, route=route,
                      dosing=dosing, source=source)

    # --- orders and what follows them -------------------------------------------------------

    def write_orders(self, n: int, start: int, end: int) -> list[Order]:
        rng, p = self.rng, self.profile
        orders: list[Order] = []
        ids = itertools.count(1)
        new_id = lambda: f"{self.pid}-{n}-{next(ids)}"  # noqa: E731
        t0 = start + rng.randint(30, 90) * MIN
        for spec in rng.sample(SCHEDULED, rng.randint(2, 4)):
            orders.append(self.scheduled(new_id(), spec, t0 + rng.randint(0, 30) * MIN, end))
        for spec in rng.sample(AS_NEEDED, rng.randint(1, 3)):
            orders.append(self.as_needed(new_id(), spec, t0 + rng.randint(0, 60) * MIN, end))
        if rng.random() < p.pca:
            t = t0 + rng.randint(0, 4 * 60) * MIN
            while t < end - 8 * HOUR:  # PCAs follow one another (settings re-written)
                stop = min(end - 4 * HOUR, t + int(rng.uniform(*p.pca_days) * DAY))
                orders.append(self.pca(new_id(), rng.choice(PCAS), t, stop))
                t = stop + rng.randint(1, 6) * HOUR if p is LONG else end
        if rng.random() < p.infusion:
            t = t0 + rng.randint(0, 24 * 60) * MIN
            if t < end - 8 * HOUR:
                stop = min(end - 4 * HOUR, t + rng.randint(12, 72) * HOUR)
                orders.append(self.infusion(new_id(), rng.choice(INFUSIONS), t, stop, weight_based=False))
        if rng.random() < p.drip:
            t = t0 + rng.randint(0, 24 * 60) * MIN
            if t < end - 8 * HOUR:
                stop = min(end - 4 * HOUR, t + rng.randint(12, 72) * HOUR)
                orders.append(self.infusion(new_id(), rng.choice(DRIPS), t, stop, weight_based=True))
        return orders

    def order(self, o: Order) -> None:
        fields = {"order_id": o.order_id, "drug": o.drug, "route": o.route, "dosing": o.dosing,
                  "prescriber": self.prescriber(), "indication": "pain"}
        self.emit("medication_ordered", o.start, fields["prescriber"], **fields)

    def lifecycle(self, o: Order, stay_end: int, may_hold: bool) -> None:
        """Choose a hold and a mid-stay stop; write them."""
        rng = self.rng
        if rng.random() < 0.12 and o.end - o.start > 2 * DAY:
            o.end = rng.randint(o.start + DAY, o.end - 6 * HOUR)
        if may_hold and rng.random() < 0.15 and o.end - o.start > DAY:
            h = rng.randint(o.start + 2 * HOUR, o.end - 14 * HOUR) if o.end - o.start > 16 * HOUR else None
            if h is not None:
                o.hold = (h, h + rng.randint(4, 12) * HOUR)
                self.emit("order_held", o.hold[0], self.prescriber(), order_id=o.order_id,
                          reason=rng.choice(["NPO for procedure", "sedated", "hypotension", "nausea"]))
                self.emit("order_resumed", o.hold[1], self.prescriber(), order_id=o.order_id)
        if o.end < stay_end - 4 * HOUR or o.dosing["form"] in ("infusion", "pca"):
            o.discontinued = True
            self.emit("order_discontinued", o.end, self.prescriber(), order_id=o.order_id,
                      reason=rng.choice(["no longer needed", "pain controlled", "side effects",
                                         "changed to oral"]))

    def on_hold(self, o: Order, t: int) -> bool:
        return o.hold is not None and o.hold[0] - 5 * MIN <= t <= o.hold[1] + 5 * MIN

    def give(self, o: Order, at: int, dose: dict, kind: str) -> None:
        """One administration: sometimes refused, sometimes charted twice and corrected."""
        rng = self.rng
        if kind in ("scheduled", "as_needed") and rng.random() < 0.03:
            self.emit("dose_not_given", at, self.nurse(), self.charted(at), order_id=o.order_id,
                      status_reason=rng.choice(["refused", "unavailable"]))
            return
        nurse = self.nurse()
        recorded = self.charted(at)
        key = self.emit("dose_given", at, nurse, recorded, order_id=o.order_id, dose=dose,
                        route=o.route, kind=kind)
        r = rng.random()
        if r < 0.005:  # charted twice; the duplicate is entered in error
            dup = self.emit("dose_given", at, nurse, recorded + MIN, order_id=o.order_id, dose=dose,
                            route=o.route, kind=kind)
            fix = recorded + rng.randint(10, 240) * MIN
            self.emit("entered_in_error", fix, nurse, target_event_id=dup, reason="duplicate entry")
        elif r < 0.01:  # wrong amount charted, corrected and charted again
            fix = recorded + rng.randint(10, 240) * MIN
            self.emit("entered_in_error", fix, nurse, target_event_id=key, reason="wrong dose charted")
            self.emit("dose_given", at, nurse, fix + MIN, order_id=o.order_id, dose=dose,
                      route=o.route, kind=kind, note="re-charted after correction")

    def scheduled(self, oid: str, spec, start: int, end: int) -> Order:
        rng = self.rng
        drug, route, dose, unit, freq = spec
        o = Order(oid, drug, route, {"form": "scheduled", "dose": q(dose, unit), "frequency": freq}, start, end)
        self.order(o)
        self.lifecycle(o, end, may_hold=True)
        change, new_dose = None, q(dose, unit)
        if rng.random() < 0.2 and o.end - o.start > 2 * DAY:
            change = rng.randint(o.start + DAY, o.end - 2 * HOUR)
            if not self.on_hold(o, change):
                factor = 1.5 if dose * 1.5 <= max_single_dose(drug, unit) else 0.5
                new_dose = q(round(dose * factor, 3), unit)
                self.emit("order_changed", change, self.prescriber(), order_id=oid,
                          dose=new_dose, reason="titration")
            else:
                change = None
        hours = SCHEDULE_HOURS[freq]
        day = datetime.fromtimestamp(o.start, self.tz).replace(hour=0, minute=0, second=0)
        while int(day.timestamp()) < o.end:
            for h in hours:
                slot = int(day.replace(hour=h).timestamp()) + rng.randint(-20, 45) * MIN
                if slot <= o.start + 10 * MIN or slot >= o.end - 10 * MIN:
                    continue
                if self.on_hold(o, slot):
                    if rng.random() < 0.5:
                        self.emit("dose_not_given", slot, self.nurse(), self.charted(slot),
                                  order_id=oid, status_reason="held")
                    continue
                if rng.random() < 0.03:
                    continue  # missed: nothing charted
                current = new_dose if change is not None and slot > change else q(dose, unit)
                self.give(o, slot, current, "scheduled")
            day = (day + timedelta(days=1)).replace(hour=0)
        o.dosing = {**o.dosing, "dose": new_dose}
        return o

    def as_needed(self, oid: str, spec, start: int, end: int) -> Order:
        rng = self.rng
        drug, route, dose, unit, freq, cap = spec
        dosing = {"form": "as_needed", "dose": q(dose, unit), "frequency": freq}
        if cap:
            dosing["max_daily"] = q(*cap)
        o = Order(oid, drug, route, dosing, start, end)
        self.order(o)
        self.lifecycle(o, end, may_hold=True)
        interval = INTERVAL_H[freq] * HOUR
        t = o.start + rng.randint(20, 180) * MIN
        while t < o.end - 10 * MIN:
            if not self.on_hold(o, t):
                self.give(o, t, q(dose, unit), "as_needed")
            # mostly respects the minimum interval; about 3% of doses come early
            factor = rng.uniform(0.5, 0.9) if rng.random() < 0.03 else 1 + rng.expovariate(1.2)
            t += int(interval * factor) + rng.randint(0, 20) * MIN
        return o

    def infusion(self, oid: str, spec, start: int, end: int, weight_based: bool) -> Order:
        rng = self.rng
        drug, low, high, unit, bolus = spec
        rate = self.rate(low, high)
        o = Order(oid, drug, "iv", {"form": "infusion", "rate": q(rate, unit)}, start, end)
        self.order(o)
        self.lifecycle(o, end, may_hold=False)
        t = start + rng.randint(2, 8) * HOUR
        stopped = False
        while t < o.end - 30 * MIN:
            if stopped or rng.random() > 0.08:
                stopped = False
                new = self.rate(low, high)
                if rng.random() < 0.15:
                    self.emit("order_changed", t, self.prescriber(), order_id=oid, rate=q(new, unit),
                              reason="titration")
                else:
                    self.emit("infusion_rate_changed", t, self.nurse(), order_id=oid, rate=q(new, unit),
                              reason=rng.choice(["titrated to pain score", "sedation", "per protocol"]))
            else:
                stopped = True
                self.emit("infusion_rate_changed", t, self.nurse(), order_id=oid, rate=q(0, unit),
                          reason="line occluded")
            if bolus and rng.random() < 0.2 and t + 5 * MIN < o.end - 30 * MIN:
                self.give(o, t + 5 * MIN, q(*bolus), "bolus")
            t += rng.randint(2, 10) * HOUR if not stopped else rng.randint(10, 60) * MIN
        return o

    def rate(self, low: float, high: float) -> float:
        return round(self.rng.uniform(low, high), 2 if high < 10 else 1)

    def pca(self, oid: str, spec, start: int, end: int) -> Order:
        rng = self.rng
        drug, demand, unit, lockout, basal, limit, limit_h = spec
        dosing = {"form": "pca", "demand_dose": q(demand, unit), "lockout_minutes": lockout,
                  "limit": q(limit, unit), "limit_hours": limit_h}
        basal_unit = f"{unit}/h"
        if basal:
            dosing["basal_rate"] = q(basal, basal_unit)
        o = Order(oid, drug, "iv", dosing, start, end)
        self.order(o)
        self.lifecycle(o, end, may_hold=False)
        current = q(demand, unit)
        recent: list[int] = []
        lam = rng.uniform(*self.profile.demands_per_hour)
        t = start + rng.randint(5, 30) * MIN
        next_change = start + rng.randint(8, 30) * HOUR
        while t < o.end - 10 * MIN:
            if t >= next_change:
                if basal and rng.random() < 0.5:
                    self.emit("order_changed", t - MIN, self.prescriber(), order_id=oid,
                              basal_rate=q(round(basal * rng.choice([0.5, 1, 1.5]), 3), basal_unit),
                              reason="pain reassessment")
                else:
                    current = q(round(demand * rng.choice([0.5, 1, 1.5]), 3), unit)
                    self.emit("order_changed", t - MIN, self.prescriber(), order_id=oid,
                              demand_dose=current, reason="pain reassessment")
                next_change = t + rng.randint(8, 30) * HOUR
            # the pump enforces the lockout and the hourly limit
            window = [x for x in recent if x > t - limit_h * HOUR]
            if (len(window) + 1) * current["value"] <= limit:
                self.emit("dose_given", t, "pca-pump", t + rng.randint(0, 60), order_id=oid,
                          dose=current, route="iv", kind="pca_demand")
                window.append(t)
            recent = window
            if rng.random() < 0.02:
                self.give(o, t + 2 * MIN, current, "bolus")
            t += lockout * MIN + int(rng.expovariate(lam) * HOUR) + rng.randint(0, 59)
        return o

    # --- transitions ------------------------------------------------------------------

    def listed(self, o: Order, carry: bool) -> dict:
        item = {"drug": o.drug, "route": o.route, "dosing": o.dosing, "indication": "pain"}
        if carry:
            item["order_id"] = o.order_id
        return item

    def transfer(self, at: int, orders: list[Order]) -> None:
        fields = {"to_location": self.rng.choice(WARDS + ["ICU", "Step-down"])}
        if self.rng.random() < 0.3:  # with a list: every active order carried on
            fields["medication_list"] = [self.listed(o, True) for o in orders
                                         if o.start < at - MIN and at < o.end]
        self.emit("transferred", at, self.nurse(), **fields)

    def discharge(self, at: int, orders: list[Order]) -> None:
        rng = self.rng
        meds, decisions = [], []
        for o in orders:
            if o.discontinued or o.start >= at:
                continue
            r = rng.random()
            if r < 0.85:
                meds.append(self.listed(o, True))
            elif r < 0.95:
                decisions.append({"drug": o.drug, "action": "stop", "reason": "no longer indicated",
                                  "order_id": o.order_id})
            # else: silently left off the list (what reconciliation must catch)
        for drug, route, dosing in self.home:
            if rng.random() < 0.3 and all(m["drug"] != drug for m in meds):
                meds.append({"drug": drug, "route": route, "dosing": dosing, "note": "home medication resumed"})
        fields = {"destination": rng.choice(DESTINATIONS), "medication_list": meds}
        if decisions:
            fields["decisions"] = decisions
        self.emit("discharged", at, self.prescriber(), **fields)


def max_single_dose(drug: str, unit: str) -> float:
    """The catalog's implausibility limit, in the dose's unit (changes stay under it)."""
    from mar.catalog import default_catalog
    from mar.units import MASS_TO_MG

    limit = default_catalog().drug(drug).max_single_dose_mg
    return math.inf if limit is None else limit / MASS_TO_MG[unit]


# --- streams ------------------------------------------------------------------------------


def _zone(rng: random.Random) -> ZoneInfo:
    r, acc = rng.random(), 0.0
    for name, share in ZONES:
        acc += share
        if r < acc:
            return ZoneInfo(name)
    return ZoneInfo(ZONES[0][0])


def _patient_events(seed: int, pid: str, arrival: int, profile: Profile,
                    until_events: int | None = None) -> list[tuple[int, int, dict]]:
    rng = random.Random(f"{seed}/{pid}")
    patient = Patient(pid, rng, _zone(rng), profile)
    patient.life(arrival, until_events)
    patient.events.sort(key=lambda e: (e[0], e[1]))
    return patient.events


def _epoch(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp())


def estimate_per_patient(seed: int = 1, sample: int = 60) -> float:
    start = _epoch(DEFAULT_START)
    return sum(len(_patient_events(seed, f"sample{i}", start, HOSPITAL)) for i in range(sample)) / sample


def hospital(patients: int | None = None, days: int = 30, seed: int = 1, events: int | None = None,
             start: str = DEFAULT_START, prefix: str = "p") -> Iterator[dict]:
    """Events of a synthetic hospital in charting order.

    Give `patients`, or `events` (then enough patients are generated and the stream is
    cut at exactly that many events: the hospital as it stood at that moment).
    """
    if patients is None:
        if events is None:
            raise ValueError("give patients or events")
        patients = max(1, math.ceil(events / estimate_per_patient(seed) * 1.05))
    rng = random.Random(f"{seed}/arrivals")
    t0 = _epoch(start)
    arrivals = sorted(t0 + rng.randrange(days * DAY) for _ in range(patients))
    width = max(6, len(str(patients)))
    heap: list = []

    def charted_before(t: float) -> Iterator[dict]:
        while heap and heap[0][0] < t:
            yield heapq.heappop(heap)[3]

    def admit(n: int, arrival: int) -> None:
        for rec, seq, event in _patient_events(seed, f"{prefix}{n:0{width}d}", arrival, HOSPITAL):
            heapq.heappush(heap, (rec, n, seq, event))

    def charted() -> Iterator[dict]:
        i = 0
        for i, arrival in enumerate(arrivals, 1):
            # Everything charted before this patient's registration is final.
            yield from charted_before(arrival - 10 * MIN)
            admit(i, arrival)
        last = arrivals[-1]
        for event in charted_before(math.inf):
            yield event
            last = max(last, _epoch_of(event["recorded_at"]))
        # The estimate fell short of the events asked for: more patients, same rate, after
        # everything charted so far.
        gap = days * DAY / patients
        while events is not None:
            i += 1
            last += 10 * MIN + int(rng.expovariate(1 / gap))
            yield from charted_before(last - 10 * MIN)
            admit(i, last)

    # cut at exactly `events`: nothing after the last one is generated
    yield from itertools.islice(charted(), events)


def _epoch_of(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def one_patient(events: int, seed: int = 1, patient_id: str = "long-001",
                start: str = DEFAULT_START) -> list[dict]:
    """One patient with a long history (repeated long stays on PCA), exactly `events` long."""
    rows = _patient_events(seed, patient_id, _epoch(start), LONG, until_events=events)
    if len(rows) < events:
        raise ValueError(f"generated only {len(rows)} events")
    return [e for _, _, e in rows[:events]]


def write_jsonl(events: Iterable[dict], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "wb") as fh:
        for e in events:
            fh.write(orjson.dumps(e))
            fh.write(b"\n")
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__,
        epilog="examples:\n"
               "  python bench/generate.py --events 200000 -o bench/out/hospital-200k.jsonl\n"
               "  python bench/generate.py --patients 500 --days 60 -o bench/out/h500.jsonl\n"
               "  python bench/generate.py --one-patient 50000 -o bench/out/long-50k.jsonl\n"
               "Any prefix of an output file is itself valid (events are in charting order).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    size = ap.add_mutually_exclusive_group(required=True)
    size.add_argument("--events", type=int, help="hospital: enough patients, cut at exactly EVENTS events")
    size.add_argument("--patients", type=int, help="hospital: exactly this many patients (all histories complete)")
    size.add_argument("--one-patient", type=int, metavar="EVENTS",
                      help="one patient with a long history of exactly EVENTS events")
    ap.add_argument("--days", type=int, default=30, help="hospital: arrivals spread over DAYS days (default 30)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--start", default=DEFAULT_START, help=f"first day, UTC (default {DEFAULT_START})")
    ap.add_argument("--prefix", default="p", help="hospital: patient id prefix (default p: p000001, ...)")
    ap.add_argument("--patient-id", default="long-001", help="one patient: its id (default long-001)")
    ap.add_argument("-o", "--output", required=True, help="output JSONL file ('-' for stdout)")
    args = ap.parse_args(argv)
    if args.one_patient is not None:
        stream: Iterable[dict] = one_patient(args.one_patient, args.seed, args.patient_id, args.start)
    else:
        stream = hospital(args.patients, args.days, args.seed, args.events, args.start, args.prefix)
    if args.output == "-":
        n = 0
        for e in stream:
            sys.stdout.buffer.write(orjson.dumps(e) + b"\n")
            n += 1
    else:
        n = write_jsonl(stream, args.output)
    print(f"wrote {n} events to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
