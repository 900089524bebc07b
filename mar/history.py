"""The patient's events in store order, as an auditor reads them."""
from __future__ import annotations

from datetime import timedelta

from .clinical_time import parse_instant
from .errors import UnknownPatient
from .store import EventStore

# Charted this long after it happened, an entry is marked late.
LATE_AFTER = timedelta(hours=1)


def patient_history(store: EventStore, patient_id: str) -> list[dict]:
    records = store.stream(patient_id)
    if not records:
        raise UnknownPatient(patient_id)
    voided_by = {r.data["target_event_id"]: r.data for r in records if r.data["type"] == "entered_in_error"}
    out = []
    for r in records:
        item = {"version": r.originator_version, **r.data}
        lag = parse_instant(r.data["recorded_at"]) - parse_instant(r.data["effective_at"])
        item["late"] = lag > LATE_AFTER
        correction = voided_by.get(r.data["event_id"])
        if correction:
            item["entered_in_error_by"] = {
                "event_id": correction["event_id"],
                "recorded_by": correction["recorded_by"],
                "recorded_at": correction["recorded_at"],
                "reason": correction["reason"],
            }
        out.append(item)
    return out


def describe(e: dict) -> str:
    """One line a nurse can read: what the event says."""
    kind = e["type"]
    q = lambda x: f"{x['value']:g} {x['unit']}"  # noqa: E731
    if kind == "dose_given":
        return f"{e['kind'].replace('_', ' ')} {q(e['dose'])} {e['route']} (order {e['order_id']})"
    if kind == "medication_ordered" or kind == "home_medication_recorded":
        head = f"order {e['order_id']}: " if "order_id" in e else ""
        return f"{head}{e['drug']} {e['route']} {describe_dosing(e['dosing'])}"
    if kind == "order_changed":
        changed = ", ".join(
            f"{k} {q(e[k]) if isinstance(e[k], dict) else e[k]}"
            for k in ("dose", "frequency", "rate", "route", "max_daily", "demand_dose",
                      "lockout_minutes", "basal_rate", "limit") if k in e
        )
        return f"order {e['order_id']}: {changed} ({e['reason']})"
    if kind == "infusion_rate_changed":
        return f"order {e['order_id']}: rate {q(e['rate'])}" + (f" ({e['reason']})" if e.get("reason") else "")
    if kind in ("order_held", "order_resumed", "order_discontinued"):
        return f"order {e['order_id']}" + (f" ({e['reason']})" if e.get("reason") else "")
    if kind == "dose_not_given":
        return f"order {e['order_id']}: {e['status_reason']}"
    if kind == "entered_in_error":
        return f"corrects {e['target_event_id']} ({e['reason']})"
    if kind == "weight_recorded":
        return q(e["weight"])
    if kind == "patient_registered":
        return f"time zone {e['timezone']}"
    if kind == "discharged":
        return f"to {e['destination']}, {len(e['medication_list'])} medications listed"
    if kind in ("admitted", "readmitted"):
        return e["location"]
    if kind == "transferred":
        return f"to {e['to_location']}"
    if kind == "alert_acknowledged":
        return f"alert {e['alert_id']} ({e['reason']})"
    return ""


def describe_dosing(d: dict) -> str:
    q = lambda x: f"{x['value']:g} {x['unit']}"  # noqa: E731
    form = d["form"]
    if form == "scheduled":
        return f"{q(d['dose'])} {d['frequency']}"
    if form == "as_needed":
        cap = f", max {q(d['max_daily'])}/day" if d.get("max_daily") else ""
        return f"{q(d['dose'])} {d['frequency']} as needed{cap}"
    if form == "infusion":
        return f"infusion {q(d['rate'])}"
    basal = f", basal {q(d['basal_rate'])}" if d.get("basal_rate") else ""
    return f"PCA demand {q(d['demand_dose'])}, lockout {d['lockout_minutes']:g} min{basal}"
