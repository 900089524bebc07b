"""The alerts projection: every patient's alerts, kept by the runner beside the other read models.

Alerts are raised as the triggering event is projected. Each catch-up batch (a read
command's, `mar project`'s, `mar project --follow`'s) recomputes the alerts of every
patient it brings events of, in the batch's transaction: rows, state and the projection's
position commit together, so an event is never applied twice nor skipped. A rebuild
computes every patient's. A patient's alerts are a pure function of their events
(`engine.patient_alerts`), so incremental catch-up and a rebuild give the same rows.

Tables:
- alerts: one row per alert of a patient (status, acknowledgement and resolution included);
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

from mar.collector import collector_paused

from ..runner import Batch, BulkLoad, Projection, Sink, Stored

if TYPE_CHECKING:
    import sqlite_utils

    from .model import Alert

COLUMNS = ("patient_id", "id", "rule", "severity", "drug", "at", "at_us", "message", "evidence", "status",
           "acknowledged", "resolved")
INSERT_ALERT = f"INSERT INTO alerts ({','.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})"
SELECT_ALERTS = f"SELECT {','.join(COLUMNS)} FROM alerts WHERE patient_id = ?"


class AlertsProjection(Projection):
    name = "alerts"
    version = 2  # 2: resolved
    tables = ("alerts", "alert_state")
    _job = None  # a rebuild's alerts being computed (bulk_begin), collected by bulk_all

    def create(self, db: sqlite_utils.Database) -> None:
        db.execute("CREATE TABLE alerts (patient_id TEXT NOT NULL, id TEXT NOT NULL, rule TEXT, severity TEXT, "
                   "drug TEXT, at TEXT, at_us INTEGER, message TEXT, evidence TEXT, status TEXT, "
                   "acknowledged TEXT, resolved TEXT, PRIMARY KEY (patient_id, id))")
        db.execute("CREATE TABLE alert_state (patient_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL)")

    def indexes(self, db: sqlite_utils.Database) -> None:
        db.execute("CREATE INDEX IF NOT EXISTS alerts_by_id ON alerts (id)")

    def apply(self, db: sqlite_utils.Database, batch: Batch) -> None:
        from ..events_table import patient_events

        new: dict[str, list[dict]] = {}
        for _, e in batch.events:
            new.setdefault(e["patient_id"], []).append(e)
        want = fingerprint()
        with collector_paused():
            for patient_id, events in new.items():
                # what the events read model held before this batch, then the batch's own events
                # (whether or not the events projection has written them yet)
                before = patient_events(db, patient_id, upto=batch.first - 1)
                replace(db, patient_id, before + events, want)

    def bulk_begin(self, load: BulkLoad) -> None:
        """From a plain SQLite store, every patient's alerts are computed in another process
        while the other projections are rebuilt (projections.alerts.bulk)."""
        from .bulk import Job

        path = plain_store_file(load.store)
        args = (path, load.store.recorder.events_table_name, load.upto)
        if self._job is not None:
            if self._job.args == args:
                return  # begun already
            self._job.cancel()
        self._job = None if path is None else Job(*args)

    def bulk_all(self, db: sqlite_utils.Database, load: BulkLoad) -> bool:
        from .bulk import Job

        job, self._job = self._job, None
        if job is None:  # not begun: done here, from the store file, if it is a plain one
            path = plain_store_file(load.store)
            if path is None:
                return False
            job = Job(path, load.store.recorder.events_table_name, load.upto, in_process_upto=load.upto + 1)
        alerts, states = job.rows()
        load.wait()  # the read-model connection may still be busy with another projection's work
        db.conn.executemany(INSERT_ALERT, alerts)
        db.conn.executemany("INSERT INTO alert_state (patient_id, fingerprint) VALUES (?, ?)", states)
        return True

    def bulk_patient(self, db: sqlite_utils.Database, patient_id: str, events: list[Stored], sink: Sink) -> None:
        sink.add("alerts", alert_rows(patient_id, [x.data for x in events], [x.t for x in events]))
        sink.add("alert_state", [(patient_id, fingerprint())])


def plain_store_file(store) -> str | None:
    """The store's SQLite file if its rows are the events' JSON as is (no cipher, no
    compression, nothing to upcast), else None."""
    from mar.event_types import UPCASTERS

    from ..events_table import store_file

    mapper = store.mapper
    if mapper.cipher or mapper.compressor or UPCASTERS:
        return None
    return store_file(store)


def replace(db, patient_id: str, events: list[dict], want: str) -> None:
    """Recompute one patient's alerts from their events (in store order) and store what
    changed. Rows that are the same are left alone: most catch-ups change no alert of the
    patients they touch, and deleting and inserting them all again rewrote a page of the id
    index per alert (the ids are digests, spread over the whole index), nearly half of what a
    catch-up wrote and so of how often the write-ahead log had to be checkpointed."""
    new = {row[1]: row for row in alert_rows(patient_id, events)}
    old = {row[1]: row for row in db.execute(SELECT_ALERTS, (patient_id,)).fetchall()}
    gone = [(patient_id, alert_id) for alert_id, row in old.items() if new.get(alert_id) != row]
    if gone:
        db.conn.executemany("DELETE FROM alerts WHERE patient_id = ? AND id = ?", gone)
    db.conn.executemany(INSERT_ALERT, [row for alert_id, row in new.items() if old.get(alert_id) != row])
    stored = db.execute("SELECT fingerprint FROM alert_state WHERE patient_id = ?", (patient_id,)).fetchone()
    if stored is None or stored[0] != want:
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
            orjson.dumps(a.acknowledged).decode() if a.acknowledged else None,
            orjson.dumps(j["resolved"]).decode() if j["resolved"] else None)


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
    """A digest of the rule modules and of the code they compute with (the course model,
    totals, clock, MME arithmetic, units), so that a new version of mar never answers from
    rows an older one computed. (Other code they use: bump the projection's version.)"""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    used = [here.parent / f"{name}.py" for name in ("course", "totals", "timeline", "mme")]
    for path in [*sorted(here.glob("*.py")), *used, here.parents[1] / "mar" / "units.py"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
