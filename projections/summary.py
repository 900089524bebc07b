"""One page about one patient: the course of stays, the regimen, daily totals, open alerts.

This is what `mar summary` prints after an import: the main job of the README.
"""
from __future__ import annotations

from mar.store import EventStore

from .alerts.store import list_alerts
from .queries import caught_up, course_of, patient_zone, regimen_at, totals_for, when
from .timeline import iso

MINUTE_US = 60_000_000  # clinical times are integer microseconds


def patient_summary(store: EventStore, patient_id: str, at: str | None = None,
                    mme_table: str | None = None) -> dict:
    """The course, the regimen at `at` (default: now, or just before death), totals, alerts."""
    with caught_up(store) as runner:
        tz = patient_zone(runner, patient_id)
        course = course_of(runner, patient_id, None, structural_only=True)
        at_us = when(at, tz, "--at")
    course_lines = [
        {"kind": t.kind, "at": iso(t.at, tz), **_where(t.data)} for t in course.transitions
    ]
    note = None
    if at_us is None and course.died_at is not None:
        at_us = course.died_at - MINUTE_US
        note = "just before death"
    regimen = regimen_at(store, patient_id, None if at_us is None else iso(at_us, tz))
    totals = totals_for(store, patient_id, mme_table=mme_table)
    alerts = list_alerts(store, patient_id, "open")
    resolved = list_alerts(store, patient_id, "resolved")
    return {
        "patient_id": patient_id,
        "timezone": str(tz),
        "course": course_lines,
        "died_at": iso(course.died_at, tz) if course.died_at is not None else None,
        "regimen": regimen,
        "regimen_note": note,
        "totals": totals,
        "open_alerts": alerts,
        "resolved_alerts": resolved,
    }


def _where(data: dict) -> dict:
    for key in ("destination", "location", "to_location"):
        if data.get(key):
            return {"where": data[key]}
    return {}
