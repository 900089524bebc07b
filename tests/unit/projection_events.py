"""Stored-form events for projection unit tests (as mar.recording.Recorder stores them)."""
from __future__ import annotations

import itertools

PATIENT = "p-1"
_ids = itertools.count(1)


def ev(event_type: str, at: str, recorded_at: str | None = None, event_id: str | None = None, **fields) -> dict:
    data = {"type": event_type, "patient_id": PATIENT, "effective_at": at, **fields}
    data["event_id"] = event_id or f"e{next(_ids)}"
    data["recorded_at"] = recorded_at or at
    data["recorded_by"] = "rn.test"
    data["stored_at"] = recorded_at or at
    data["stored_by"] = "rn.test"
    data["v"] = 1
    return data


def mg(v: float, unit: str = "mg") -> dict:
    return {"value": v, "unit": unit}


def registered(at="2007-10-01T08:00:00-07:00", tz="America/Los_Angeles"):
    return ev("patient_registered", at, timezone=tz)


def weight(at: str, kg: float):
    return ev("weight_recorded", at, weight=mg(kg, "kg"))


def admitted(at: str):
    return ev("admitted", at, location="ward 5")


def order(at: str, order_id: str, drug: str, route: str, dosing: dict, **kw):
    return ev("medication_ordered", at, order_id=order_id, drug=drug, route=route, dosing=dosing,
              prescriber="dr.a", **kw)


def scheduled(value: float, frequency: str, unit: str = "mg") -> dict:
    return {"form": "scheduled", "dose": mg(value, unit), "frequency": frequency}


def infusion(value: float, unit: str) -> dict:
    return {"form": "infusion", "rate": mg(value, unit)}


def given(at: str, order_id: str, value: float, route: str = "iv", kind: str = "bolus", **kw):
    return ev("dose_given", at, order_id=order_id, dose=mg(value), route=route, kind=kind, **kw)


def rate(at: str, order_id: str, value: float, unit: str, reason: str | None = None):
    extra = {"reason": reason} if reason else {}
    return ev("infusion_rate_changed", at, order_id=order_id, rate=mg(value, unit), **extra)
