"""The `alerts` read model in the projections database, and what `mar alerts` / `mar ack` run.

Tables (created on first use, beside the runner's):
- alerts: one row per alert of a patient (status and acknowledgement included);
- alert_state: per patient, the `events` position and count the rows were computed from,
  and the fingerprint of the rule settings, catalog and MME table used.

Alerts are materialised per patient when read: a read command catches the runner up
(projections.runner), and every patient whose events moved on since their rows were
written (or whose settings changed) is recomputed from the `events` read model, rows and
state replaced in one transaction. Computing them inside every catch-up batch instead would
refold each touched patient's whole record per batch, a cost proportional to the record
rather than to the new events; on read, the cost is paid once per patient per change and
only for the patients asked about. The rows are a pure function of the patient's events,
so whenever they were computed they are the same (a full rebuild gives the same rows).

`--at` and `--known-at` answers are computed on the fly, not stored.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import orjson

from mar.catalog import default_catalog
from mar.errors import MarError, UnknownPatient
from mar.store import EventStore

from ..events_table import patient_events
from ..mme import load_table
from ..runner import Runner, chunks, write_transaction
from ..timeline import parse_time, zone
from . import mme as mme_rules
from .config import default_rules
from .engine import by_urgency, patient_alerts
from .model import Alert

STATUSES = ("open", "acknowledged", "all")
COLUMNS = ("patient_id", "id", "rule", "severity", "drug", "at", "at_us", "message", "evidence", "status",
           "acknowledged")


class UnknownAlert(MarError):
    pass


class BadTime(MarError):
    pass


def ensure_tables(db) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS alerts (patient_id TEXT NOT NULL, id TEXT NOT NULL, rule TEXT, "
               "severity TEXT, drug TEXT, at TEXT, at_us INTEGER, message TEXT, evidence TEXT, status TEXT, "
               "acknowledged TEXT, PRIMARY KEY (patient_id, id))")
    db.execute("CREATE INDEX IF NOT EXISTS alerts_by_id ON alerts (id)")
    db.execute("CREATE TABLE IF NOT EXISTS alert_state (patient_id TEXT PRIMARY KEY, position INTEGER, "
               "events INTEGER, fingerprint TEXT, computed_at TEXT)")


def fingerprint() -> str:
    """What stored rows depend on besides the events: the rules' code, their settings, the
    catalog and the MME table. Any change and the rows are recomputed on next read."""
    settings = default_rules()
    table = settings.rule(mme_rules.THRESHOLD)["mme_table"]
    return f"{_code_digest()}:{settings.fingerprint}:{default_catalog().edition}:{load_table(table).label}"


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """A digest of the rule modules (and the course model they read), so that a new version
    of mar never answers from rows an older one computed."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for path in sorted([*here.glob("*.py"), here.parent / "course.py", here.parent / "totals.py"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def refresh(db, patient_ids: list[str] | None = None) -> int:
    """Recompute the stored alerts of the patients whose events moved on. Returns how many."""
    ensure_tables(db)
    want = fingerprint()
    done = 0
    for part in chunks(_stale(db, patient_ids, want), CHUNK):
        with write_transaction(db):
            # Another reader may have done some while we waited for the lock.
            for patient_id, head in _stale_heads(db, list(part), want).items():
                _recompute(db, patient_id, head, want)
                done += 1
    return done


# Patients recomputed per write transaction: fewer commits, yet the write lock is held well
# under a second, so other readers catching up are not kept waiting long.
CHUNK = 50


def _heads(db, patient_ids: list[str] | None) -> dict[str, tuple[int, int]]:
    """Per patient, the (latest position, count) of their events in the `events` read model."""
    if patient_ids is None:
        rows = db.execute("SELECT patient_id, MAX(position), COUNT(*) FROM events GROUP BY patient_id").fetchall()
    else:
        rows = [db.execute("SELECT ?, MAX(position), COUNT(*) FROM events WHERE patient_id = ?", (p, p)).fetchone()
                for p in patient_ids]
    return {r[0]: (r[1], r[2]) for r in rows if r[2]}


def _stale_heads(db, patient_ids: list[str] | None, want: str) -> dict[str, tuple[int, int]]:
    heads = _heads(db, patient_ids)
    sql = "SELECT patient_id, position, events, fingerprint FROM alert_state"
    if patient_ids is None:
        rows = db.execute(sql).fetchall()
    else:
        rows = []
        for part in chunks(patient_ids, 500):
            rows += db.execute(f"{sql} WHERE patient_id IN ({','.join('?' * len(part))})", list(part)).fetchall()
    state = {r[0]: (r[1], r[2], r[3]) for r in rows}
    return {p: head for p, head in sorted(heads.items()) if state.get(p) != (*head, want)}


def _stale(db, patient_ids: list[str] | None, want: str) -> list[str]:
    return list(_stale_heads(db, patient_ids, want))


def _recompute(db, patient_id: str, head: tuple[int, int], want: str) -> None:
    events = patient_events(db, patient_id)
    alerts = patient_alerts(events)
    tz = _tz(events)
    db.execute("DELETE FROM alerts WHERE patient_id = ?", (patient_id,))
    db.conn.executemany(f"INSERT INTO alerts ({','.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})",
                        [_row(a, tz) for a in alerts])
    db.execute("INSERT OR REPLACE INTO alert_state VALUES (?,?,?,?,?)",
               (patient_id, *head, want, datetime.now(timezone.utc).isoformat(timespec="seconds")))


def _row(a: Alert, tz) -> tuple:
    j = a.to_json(tz)
    return (a.patient_id, a.id, a.rule, a.severity, a.drug, j["at"], a.at, a.message,
            orjson.dumps(a.evidence).decode(), a.status,
            orjson.dumps(a.acknowledged).decode() if a.acknowledged else None)


def _from_row(r) -> dict:
    return {"id": r[1], "patient_id": r[0], "rule": r[2], "severity": r[3], "drug": r[4], "at": r[5],
            "message": r[7], "evidence": orjson.loads(r[8]), "status": r[9],
            "acknowledged": orjson.loads(r[10]) if r[10] else None, "_at_us": r[6]}


def _tz(events: list[dict]):
    name = next((e["timezone"] for e in events if e["type"] == "patient_registered"), None)
    return zone(name or "UTC")


# --- what the commands run -------------------------------------------------------------------


def list_alerts(store: EventStore, patient_id: str | None = None, status: str = "all",
                at: str | None = None, known_at: str | None = None) -> list[dict]:
    """Alerts as JSON-ready dicts, open first, most severe first (then the latest first)."""
    if status not in STATUSES:
        raise MarError(f"--status={status!r}: use one of {', '.join(STATUSES)}")
    with Runner(store) as runner:
        runner.catch_up()
        db = runner.db
        if patient_id is not None and not _heads(db, [patient_id]):
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
    sql = f"SELECT {','.join(COLUMNS)} FROM alerts"
    rows = db.execute(sql + " WHERE patient_id = ?", (patient_id,)).fetchall() if patient_id is not None \
        else db.execute(sql).fetchall()
    return [_from_row(r) for r in rows]


def _as_of(db, patient_id: str | None, at: str | None, known_at: str | None) -> list[dict]:
    ids = [patient_id] if patient_id is not None else sorted(_heads(db, None))
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
    """The stored alert with this id (recomputing stale patients if it is not found at first)."""
    refresh_done = False
    while True:
        ensure_tables(db)
        row = db.execute(f"SELECT {','.join(COLUMNS)} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        if row is not None or refresh_done:
            return None if row is None else _from_row(row)
        refresh(db)
        refresh_done = True


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
        runner.catch_up()
        refresh(runner.db, [alert["patient_id"]])
        updated = find_alert(runner.db, alert_id)
    return {k: v for k, v in updated.items() if not k.startswith("_")}
