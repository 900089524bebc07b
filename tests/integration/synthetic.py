"""Small synthetic charts for store-level tests and the PostgreSQL benchmark.

Each patient: registered, admitted, one scheduled oral order, then doses every 6 hours.
Clinical times start in 2024, so nothing is in the future.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson

START = datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc)


def _at(t: datetime) -> str:
    return t.isoformat()


def chart_start(patient_id: str) -> list[dict]:
    """The three events before any dose: registration, admission, the order."""
    base = {"patient_id": patient_id}
    return [
        {**base, "type": "patient_registered", "effective_at": _at(START), "timezone": "UTC",
         "idempotency_key": f"{patient_id}/reg"},
        {**base, "type": "admitted", "effective_at": _at(START + timedelta(minutes=5)),
         "location": "ward 7", "idempotency_key": f"{patient_id}/adm"},
        {**base, "type": "medication_ordered", "effective_at": _at(START + timedelta(minutes=10)),
         "order_id": f"{patient_id}-apap", "drug": "acetaminophen", "route": "po",
         "dosing": {"form": "scheduled", "dose": {"value": 500, "unit": "mg"}, "frequency": "q6h"},
         "prescriber": "dr.synthetic", "idempotency_key": f"{patient_id}/ord"},
    ]


def dose(patient_id: str, n: int, key_prefix: str = "dose") -> dict:
    """The n-th scheduled dose of the patient's order (n from 0)."""
    return {
        "type": "dose_given", "patient_id": patient_id,
        "effective_at": _at(START + timedelta(minutes=15) + timedelta(minutes=7 * n)),
        "order_id": f"{patient_id}-apap", "dose": {"value": 500, "unit": "mg"}, "route": "po",
        "kind": "scheduled", "idempotency_key": f"{patient_id}/{key_prefix}/{n}",
    }


def hospital(patients: int, doses_per_patient: int, prefix: str = "syn") -> list[dict]:
    """Whole charts, patient after patient: patients * (3 + doses_per_patient) events."""
    events = []
    for p in range(patients):
        pid = f"{prefix}-{p:05d}"
        events += chart_start(pid)
        events += [dose(pid, n) for n in range(doses_per_patient)]
    return events


def write_jsonl(path, events: list[dict]) -> None:
    with open(path, "wb") as fh:
        for e in events:
            fh.write(orjson.dumps(e) + b"\n")
