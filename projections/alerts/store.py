"""What `mar alerts` and `mar ack` run, over the `alerts` read model (projections.alerts.projection).

The rows are kept by the runner: a read command catches up, and the catch-up has raised
the alerts of every event it projected. A read then recomputes only the patients whose rows
were computed under other rule settings, catalog or MME table (their fingerprint), so a
changed setting shows at once. `--at` and `--known-at` answers are computed on the fly from
the `events` read model, not stored.
"""
from __future__ import annotations

from datetime import datetime, timezone

import orjson

from mar.errors import MarError, UnknownPatient
from mar.store import EventStore

from ..events_table import patient_events
from ..runner import Runner, chunks, write_transaction
from ..timeline import parse_time, zone
from .engine import by_urgency, patient_alerts
from .projection import COLUMNS, SELECT_ALERTS, fingerprint, patient_zone, replace

STATUSES = ("open", "acknowledged", "resolved", "all")


class UnknownAlert(MarError):
    pass


class BadTime(MarError):
    pass


def refresh(db, patient_ids: list[str] | None = None) -> int:
    """Recompute the stored alerts of the patients (all if None) whose rows were computed
    under another fingerprint. Returns how many."""
    want = fingerprint()
    done = 0
    for part in chunks(_stale(db, patient_ids, want), CHUNK):
        with write_transaction(db):
            # Another reader may have done some while we waited for the lock.
            for patient_id in _stale(db, list(part), want):
                replace(db, patient_id, patient_events(db, patient_id), want)
                done += 1
    return done


# Patients recomputed per write transaction: fewer commits, yet the write lock is held well
# under a second, so other readers catching up are not kept waiting long.
CHUNK = 50


def _stale(db, patient_ids: list[str] | None, want: str) -> list[str]:
    sql = "SELECT patient_id FROM alert_state WHERE fingerprint != ?"
    if patient_ids is None:
        return [r[0] for r in db.execute(sql + " ORDER BY patient_id", (want,)).fetchall()]
    found = []
    for part in chunks(patient_ids, 500):
        found += [r[0] for r in db.execute(f"{sql} AND patient_id IN ({','.join('?' * len(part))})",
                                           [want, *part]).fetchall()]
    return sorted(found)


def _known(db, patient_id: str) -> bool:
    return db.execute("SELECT 1 FROM events WHERE patient_id = ? LIMIT 1", (patient_id,)).fetchone() is not None


def _from_row(r) -> dict:
    return {"id": r[1], "patient_id": r[0], "rule": r[2], "severity": r[3], "drug": r[4], "at": r[5],
            "message": r[7], "evidence": orjson.loads(r[8]), "status": r[9],
            "acknowledged": orjson.loads(r[10]) if r[10] else None,
            "resolved": orjson.loads(r[11]) if r[11] else None, "_at_us": r[6]}


def _tz(events: list[dict]):
    return zone(patient_zone(events) or "UTC")


# --- what the commands run -------------------------------------------------------------------


def list_alerts(store: EventStore, patient_id: str | None = None, status: str = "all",
                at: str | None = None, known_at: str | None = None) -> list[dict]:
    """Alerts as JSON-ready dicts, open first, most severe first (then the latest first)."""
    if status not in STATUSES:
        raise MarError(f"--status={status!r}: use one of {', '.join(STATUSES)}")
    with Runner(store) as runner:
        runner.catch_up()
        db = runner.db
        if patient_id is not None and not _known(db, patient_id):
            raise UnknownPatient(patient_id)
        if at is None and known_at is None:
            refresh(db, None if patient_id is None else [patient_id])
            found = _stored(db, patient_id)
        else:
            found = _as_of(db, patient_id, at, known_at)
    found = [a for a in found if status == "all" or a["status"] == status]
    ranked = by_urgency([_Sortable(a) for a in found])
    return [{k: v for k, v in s.data.items() if not k.startswith("_")} for s in ranked]


class _Sortable:
    """A stored alert dict seen through the attributes `by_urgency` sorts on."""

    def __init__(self, data: dict):
        self.data = data
        self.status, self.severity, self.at, self.id = data["status"], data["severity"], data["_at_us"], data["id"]


def _stored(db, patient_id: str | None) -> list[dict]:
    rows = db.execute(SELECT_ALERTS, (patient_id,)).fetchall() if patient_id is not None \
        else db.execute(f"SELECT {','.join(COLUMNS)} FROM alerts").fetchall()
    return [_from_row(r) for r in rows]


def _as_of(db, patient_id: str | None, at: str | None, known_at: str | None) -> list[dict]:
    ids = [patient_id] if patient_id is not None else \
        [r[0] for r in db.execute("SELECT DISTINCT patient_id FROM events ORDER BY patient_id").fetchall()]
    out = []
    for pid in ids:
        events = patient_events(db, pid)
        tz = _tz(events)
        alerts = patient_alerts(events, at=_time(at, tz, "--at"), known_at=_time(known_at, tz, "--known-at"))
        out += [{**a.to_json(tz), "_at_us": a.at} for a in alerts]
    return out


def _time(text: str | None, tz, option: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_time(text, tz)
    except ValueError:
        raise BadTime(f"{option}={text!r}: not an ISO 8601 time (for example 2007-12-03T12:00:00-08:00; "
                      f"without a UTC offset, in the patient's time zone)") from None


def find_alert(db, alert_id: str) -> dict | None:
    """The stored alert with this id, from rows of the current fingerprint."""
    row = _by_id(db, alert_id)
    if row is not None and refresh(db, [row["patient_id"]]):
        row = _by_id(db, alert_id)  # its patient's rows were computed under other settings
    if row is None and refresh(db):
        row = _by_id(db, alert_id)
    return row


def _by_id(db, alert_id: str) -> dict | None:
    row = db.execute(f"SELECT {','.join(COLUMNS)} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    return None if row is None else _from_row(row)


def acknowledge(store: EventStore, user: str | None, alert_id: str, reason: str,
                now: datetime | None = None) -> dict:
    """Record an `alert_acknowledged` event for an existing alert; return the alert as it now stands."""
    from mar.recording import Recorder

    if not reason or not reason.strip():
        raise MarError("--reason is required: say what was done about the alert")
    recorder = Recorder(store, user)  # refuses a missing user before anything is read
    with Runner(store) as runner:
        runner.catch_up()
        alert = find_alert(runner.db, alert_id)
        if alert is None:
            raise UnknownAlert(f"no alert {alert_id!r} in this store (list them with `mar alerts`)")
        tz = _tz(patient_events(runner.db, alert["patient_id"], structural_only=True))
        when = (now or datetime.now(timezone.utc)).astimezone(tz).isoformat(timespec="seconds")
        recorder.record([(None, {"type": "alert_acknowledged", "patient_id": alert["patient_id"],
                                 "effective_at": when, "alert_id": alert_id, "reason": reason.strip()})],
                        source="mar ack")
        runner.catch_up()  # the alerts projection marks it acknowledged in the same transaction
        updated = find_alert(runner.db, alert_id)
    return {k: v for k, v in updated.items() if not k.startswith("_")}
