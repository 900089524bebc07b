"""A small two-patient record for the audit tests, and tools to tamper with its SQLite file.

p1: methadone tid; the first dose is later entered in error, the second is charted 6 hours
late. p2: a ketamine infusion with one rate change. All in America/Los_Angeles.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from cli.main import cli

P1 = [
    {"type": "patient_registered", "patient_id": "p1", "timezone": "America/Los_Angeles",
     "effective_at": "2007-10-14T08:00:00-07:00", "recorded_at": "2007-10-14T08:05:00-07:00",
     "recorded_by": "clerk.a"},
    {"type": "weight_recorded", "patient_id": "p1", "weight": {"value": 91, "unit": "kg"},
     "effective_at": "2007-10-14T08:10:00-07:00", "recorded_at": "2007-10-14T08:12:00-07:00",
     "recorded_by": "rn.lee"},
    {"type": "admitted", "patient_id": "p1", "location": "4 West",
     "effective_at": "2007-10-14T09:00:00-07:00", "recorded_at": "2007-10-14T09:01:00-07:00",
     "recorded_by": "rn.lee"},
    {"type": "medication_ordered", "patient_id": "p1", "order_id": "o1", "drug": "methadone", "route": "po",
     "dosing": {"form": "scheduled", "dose": {"value": 40, "unit": "mg"}, "frequency": "tid"},
     "prescriber": "dr.kim", "effective_at": "2007-10-14T10:00:00-07:00",
     "recorded_at": "2007-10-14T10:00:00-07:00", "recorded_by": "dr.kim"},
    {"type": "dose_given", "patient_id": "p1", "order_id": "o1", "dose": {"value": 40, "unit": "mg"},
     "route": "po", "kind": "scheduled", "idempotency_key": "p1/dose/1",
     "effective_at": "2007-10-14T12:00:00-07:00", "recorded_at": "2007-10-14T12:05:00-07:00",
     "recorded_by": "rn.lee"},
    {"type": "dose_given", "patient_id": "p1", "order_id": "o1", "dose": {"value": 40, "unit": "mg"},
     "route": "po", "kind": "scheduled", "idempotency_key": "p1/dose/2",
     "effective_at": "2007-10-14T14:00:00-07:00", "recorded_at": "2007-10-14T20:00:00-07:00",
     "recorded_by": "rn.ortiz"},
    {"type": "entered_in_error", "patient_id": "p1", "target_event_id": "p1/dose/1",
     "reason": "charted on the wrong patient", "effective_at": "2007-10-14T21:00:00-07:00",
     "recorded_at": "2007-10-14T21:00:00-07:00", "recorded_by": "rn.chief"},
]

P2 = [
    {"type": "patient_registered", "patient_id": "p2", "timezone": "America/Los_Angeles",
     "effective_at": "2007-10-14T07:00:00-07:00", "recorded_at": "2007-10-14T07:02:00-07:00",
     "recorded_by": "clerk.a"},
    {"type": "weight_recorded", "patient_id": "p2", "weight": {"value": 70, "unit": "kg"},
     "effective_at": "2007-10-14T07:10:00-07:00", "recorded_at": "2007-10-14T07:12:00-07:00",
     "recorded_by": "rn.lee"},
    {"type": "admitted", "patient_id": "p2", "location": "ICU",
     "effective_at": "2007-10-14T07:30:00-07:00", "recorded_at": "2007-10-14T07:31:00-07:00",
     "recorded_by": "rn.lee"},
    {"type": "medication_ordered", "patient_id": "p2", "order_id": "k1", "drug": "ketamine", "route": "iv",
     "dosing": {"form": "infusion", "rate": {"value": 55, "unit": "mcg/kg/h"}},
     "prescriber": "dr.kim", "effective_at": "2007-10-14T11:00:00-07:00",
     "recorded_at": "2007-10-14T11:01:00-07:00", "recorded_by": "dr.kim"},
    {"type": "infusion_rate_changed", "patient_id": "p2", "order_id": "k1",
     "rate": {"value": 27.5, "unit": "mcg/kg/h"}, "reason": "taper",
     "effective_at": "2007-10-14T18:00:00-07:00", "recorded_at": "2007-10-14T18:02:00-07:00",
     "recorded_by": "rn.ortiz"},
]

TRIGGERS = [f"{table}_no_{op}" for table in ("stored_events", "mar_index", "mar_meta")
            for op in ("update", "delete")]


def write_case(path: Path, events=None) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in (events or P1 + P2)))
    return path


def run(runner, db: Path, *args, code: int = 0):
    result = runner.invoke(cli, ["--db", str(db), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def make_store(runner, tmp_path: Path, events=None) -> Path:
    db = tmp_path / "mar.db"
    run(runner, db, "import", str(write_case(tmp_path / "case.jsonl", events)))
    return db


def rows(db: Path) -> dict[tuple[str, int], dict]:
    """(patient, version) -> the row's notification id, stream, state and index fields."""
    con = sqlite3.connect(db)
    try:
        out = {}
        for rowid, oid, version, state, event_id, chain in con.execute(
                "SELECT e.rowid, e.originator_id, e.originator_version, e.state, i.event_id, i.chain "
                "FROM stored_events e JOIN mar_index i USING (originator_id, originator_version)"):
            patient = json.loads(state)["patient_id"]
            out[(patient, version)] = {"position": rowid, "stream": oid, "state": state,
                                       "event_id": event_id, "chain": chain}
        return out
    finally:
        con.close()


def tamper(db: Path, *statements: tuple[str, tuple], restore: bool = True) -> None:
    """Run SQL on the file as someone with the file would: append-only triggers dropped
    first and, unless `restore` is false, put back afterwards to cover the tracks."""
    from mar.store import APPEND_ONLY

    con = sqlite3.connect(db)
    try:
        for name in TRIGGERS:
            con.execute(f"DROP TRIGGER IF EXISTS {name}")
        for sql, params in statements:
            con.execute(sql, params)
        con.commit()
        if restore:
            for table in ("stored_events", "mar_index", "mar_meta"):
                con.executescript(APPEND_ONLY.format(table=table))
    finally:
        con.close()
