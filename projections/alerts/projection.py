"""The alerts projection: every patient's alerts, kept by the runner beside the other read models.

Alerts are raised as the triggering event is projected. Each catch-up batch (a read
command's, `mar project`'s, `mar project --follow`'s) recomputes the alerts of every
patient it brings events of, in the batch's transaction: rows, state and the projection's
position commit together, so an event is never applied twice nor skipped. A rebuild
computes every patient's. A patient's alerts are a pure function of their events
(`engine.patient_alerts`), so incremental catch-up and a rebuild give the same rows.

Tables:
- alerts: one row per alert of a patient (status and acknowledgement included);
- alert_state: per patient, the fingerprint of what the rows were computed with besides
  the events (rule code and settings, catalog, MME table). A read recomputes the patients
  whose fingerprint is not the current one (`store.refresh`).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import orjson

from ..runner import Batch, Projection, Sink, Stored

if TYPE_CHECKING:
    import sqlite_utils

    from .model import Alert

COLUMNS = ("patient_id", "id", "rule", "severity", "drug", "at", "at_us", "message", "evidence", "status",
           "acknowledged")
INSERT_ALERT = f"INSERT INTO alerts ({','.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})"


class AlertsProjection(Projection):
    name = "alerts"
    version = 1
    tables = ("alerts", "alert_state")

    def create(self, db: sqlite_utils.Database) -> None:
        db.execute("CREATE TABLE alerts (patient_id TEXT NOT NULL, id TEXT NOT NULL, rule TEXT, severity TEXT, "
                   "drug TEXT, at TEXT, at_us INTEGER, message TEXT, evidence TEXT, status TEXT, "
                   "acknowledged TEXT, PRIMARY KEY (patient_id, id))")
        db.execute("CREATE TABLE alert_state (patient_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL)")

    def indexes(self, db: sqlite_utils.Database) -> None:
        db.execute("CREATE INDEX IF NOT EXISTS alerts_by_id ON alerts (id)")

    def apply(self, db: sqlite_utils.Database, batch: Batch) -> None:
        from ..events_table import patient_events

        new: dict[str, list[dict]] = {}
        for _, e in batch.events:
            new.setdefault(e["patient_id"], []).append(e)
        want = fingerprint()
        for patient_id, events in new.items():
            # what the events read model held before this batch, then the batch's own events
            # (whether or not the events projection has written them yet)
            before = patient_events(db, patient_id, upto=batch.first - 1)
            replace(db, patient_id, before + events, want)

    def bulk_patient(self, db: sqlite_utils.Database, patient_id: str, events: list[Stored], sink: Sink) -> None:
        sink.add("alerts", alert_rows(patient_id, [x.data for x in events], [x.t for x in events]))
        sink.add("alert_state", [(patient_id, fingerprint())])


def replace(db, patient_id: str, events: list[dict], want: str) -> None:
    """Recompute one patient's alerts from their events (in store order) and store them."""
    db.execute("DELETE FROM alerts WHERE patient_id = ?", (patient_id,))
    db.conn.executemany(INSERT_ALERT, alert_rows(patient_id, events))
    db.execute("INSERT OR REPLACE INTO alert_state (patient_id, fingerprint) VALUES (?, ?)", (patient_id, want))


def alert_rows(patient_id: str, events: list[dict], times: list[int] | None = None) -> list[tuple]:
    from ..timeline import zone
    from .engine import patient_alerts

    alerts = patient_alerts(events, times=times)
    if not alerts:
        return []
    tz = zone(patient_zone(events) or "UTC")
    return [_row(a, tz) for a in alerts]


def patient_zone(events: Iterable[dict]) -> str | None:
    return next((e["timezone"] for e in events if e["type"] == "patient_registered"), None)


def _row(a: Alert, tz) -> tuple:
    j = a.to_json(tz)
    return (a.patient_id, a.id, a.rule, a.severity, a.drug, j["at"], a.at, a.message,
            orjson.dumps(a.evidence).decode(), a.status,
            orjson.dumps(a.acknowledged).decode() if a.acknowledged else None)


def fingerprint() -> str:
    """What stored rows depend on besides the events: the rules' code, their settings, the
    catalog and the MME table. Rows computed under another are recomputed when read."""
    from mar.catalog import default_catalog

    from ..mme import load_table
    from . import mme as mme_rules
    from .config import default_rules

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
