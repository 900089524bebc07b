"""The patient's events in store order, as an auditor reads them, and what changed between
two recorded moments (`--known-at`)."""
from __future__ import annotations

from datetime import datetime, timedelta

from .clinical_time import parse_instant, zone
from .errors import MarError, UnknownPatient
from .store import EventStore

# Charted this long after it happened, an entry is marked late.
LATE_AFTER = timedelta(hours=1)


class BadTime(MarError):
    """A --known-at time that cannot be read, or two in the wrong order."""


def patient_history(store: EventStore, patient_id: str, known_at: str | datetime | None = None) -> list[dict]:
    """The stream in store order. With `known_at`, only what the record showed then: events
    recorded (charted) later, corrections included, are left out."""
    items = _stream(store, patient_id)
    return annotate(items, None if known_at is None else patient_time(known_at, items))


def _stream(store: EventStore, patient_id: str) -> list[dict]:
    records = store.stream(patient_id)
    if not records:
        raise UnknownPatient(patient_id)
    return [{"version": r.originator_version, **r.data} for r in records]


def annotate(items: list[dict], known_at: datetime | None = None) -> list[dict]:
    """Mark late entries and corrections (with who made them) among what was known at `known_at`."""
    if known_at is not None:
        items = [i for i in items if parse_instant(i["recorded_at"]) <= known_at]
    items = [dict(i) for i in items]
    voided_by = {i["target_event_id"]: i for i in items if i["type"] == "entered_in_error"}
    for item in items:
        lag = parse_instant(item["recorded_at"]) - parse_instant(item["effective_at"])
        item["late"] = lag > LATE_AFTER
        correction = voided_by.get(item["event_id"])
        if correction:
            item["entered_in_error_by"] = {
                "event_id": correction["event_id"],
                "version": correction["version"],
                "recorded_by": correction["recorded_by"],
                "recorded_at": correction["recorded_at"],
                "reason": correction["reason"],
            }
    return items


def patient_time(value: str | datetime, items: list[dict]) -> datetime:
    """A time given by a user: ISO 8601 with a UTC offset, or without one in the patient's
    own time zone (from the registration), as the read commands take it."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise BadTime(f"{value!r} is not an ISO 8601 time (for example 2007-10-15T14:00:00-07:00)") from None
    if value.tzinfo is None:
        tz = next((i["timezone"] for i in items if i["type"] == "patient_registered"), None)
        if tz is None:
            raise BadTime(f"{value.isoformat()} has no UTC offset and the patient has no registered time zone")
        value = value.replace(tzinfo=zone(tz))
    return value


def record_diff(store: EventStore, patient_id: str, since: str | datetime, until: str | datetime) -> dict:
    """What changed in the record between two recorded moments (`since` before `until`):
    the events recorded after `since` and by `until` — late charting and corrections
    included — and the earlier events that a correction in between entered in error."""
    everything = _stream(store, patient_id)
    since, until = patient_time(since, everything), patient_time(until, everything)
    if since >= until:
        raise BadTime(f"give the earlier --known-at first: {since.isoformat()} is not before {until.isoformat()}")
    items = annotate(everything, until)
    added = sorted((i for i in items if parse_instant(i["recorded_at"]) > since),
                   key=lambda i: (parse_instant(i["recorded_at"]), i["version"]))
    voided = [i for i in items if "entered_in_error_by" in i
              and parse_instant(i["entered_in_error_by"]["recorded_at"]) > since]
    return {"patient_id": patient_id, "since": since.isoformat(), "until": until.isoformat(),
            "added": added, "entered_in_error": voided}


def marks(e: dict) -> str:
    """The marks on one history line: late charting (the line names who charted it) and
    corrections, with who entered them."""
    out = "  LATE" if e["late"] else ""
    if "entered_in_error_by" in e:
        out += f"  ENTERED IN ERROR by {e['entered_in_error_by']['recorded_by']}"
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
