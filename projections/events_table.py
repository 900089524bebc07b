"""The `events` read model: every stored event, one row each, findable by patient.

Beside the JSON (`data`) it keeps the columns people filter on (type, clinical and recorded
time, order) and `structural`: 1 for the events that shape orders, rate segments and lists
(plus corrections), so that a patient's course can be refolded without reading their doses.
"""
from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

import orjson

from .course import STRUCTURAL
from .runner import Batch, BulkLoad, Projection, Sink, Stored

if TYPE_CHECKING:
    import sqlite_utils

    from mar.store import EventStore

COLUMNS = ("position", "patient_id", "event_id", "type", "effective_at", "recorded_at", "recorded_by", "order_id",
           "structural", "data")
REFOLDED = STRUCTURAL | {"entered_in_error"}


class EventsProjection(Projection):
    name = "events"
    version = 1
    tables = ("events",)

    def create(self, db: sqlite_utils.Database) -> None:
        db["events"].create({
            "position": int, "patient_id": str, "event_id": str, "type": str, "effective_at": str,
            "recorded_at": str, "recorded_by": str, "order_id": str, "structural": int, "data": str,
        }, pk="position")

    def indexes(self, db: sqlite_utils.Database) -> None:
        db["events"].create_index(["patient_id", "structural", "position"], index_name="events_by_patient",
                                  if_not_exists=True)

    def apply(self, db: sqlite_utils.Database, batch: Batch) -> None:
        db.conn.executemany(
            f"INSERT INTO events ({','.join(COLUMNS)}) VALUES ({','.join('?' * len(COLUMNS))})",
            [row(pos, e) for pos, e in batch.events],
        )

    def bulk_all(self, db: sqlite_utils.Database, load: BulkLoad) -> bool:
        if not sql_copy_possible(load.store, load.attached):
            return False
        load.copied.add("events")
        load.in_background(bulk_copy, db, load.store, load.upto, load.attached)
        return True

    def bulk_patient(self, db: sqlite_utils.Database, patient_id: str, events: list[Stored], sink: Sink) -> None:
        sink.add("events", [row(x.position, x.data, x.t, x.text) for x in events])


def row(pos: int, e: dict, t: int | None = None, text: str | None = None) -> tuple:
    return (pos, e["patient_id"], e["event_id"], e["type"], e["effective_at"], e["recorded_at"],
            e.get("recorded_by"), e.get("order_id"), 1 if e["type"] in REFOLDED else 0,
            orjson.dumps(e).decode() if text is None else text)


def bulk_copy(db: sqlite_utils.Database, store: EventStore, upto: int, attached: str | None) -> bool:
    """Copy the store's rows into `events` inside SQLite (no Python per row), when the store
    is a plain SQLite file (attached to db) whose rows need no upcasting, decryption or
    decompression."""
    if not sql_copy_possible(store, attached):
        return False
    table = store.recorder.events_table_name
    refolded = ",".join(f"'{t}'" for t in sorted(REFOLDED))
    db.execute(
        "INSERT INTO events SELECT rowid, j ->> '$.patient_id', j ->> '$.event_id', j ->> '$.type', "
        "j ->> '$.effective_at', j ->> '$.recorded_at', j ->> '$.recorded_by', j ->> '$.order_id', "
        f"(j ->> '$.type') IN ({refolded}), j FROM (SELECT rowid, CAST(state AS TEXT) AS j "
        f"FROM {attached}.{table} WHERE rowid <= ? ORDER BY rowid)", (upto,))
    return True


def sql_copy_possible(store: EventStore, attached: str | None) -> bool:
    """Stored rows are the events' JSON as is: no cipher, no compression, nothing to upcast."""
    from mar.event_types import UPCASTERS

    mapper = store.mapper
    return attached is not None and not (mapper.cipher or mapper.compressor or UPCASTERS)


def store_file(store: EventStore) -> str | None:
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    if not isinstance(store.recorder, SQLiteApplicationRecorder):
        return None
    url = store.url
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
    if "://" in path or path == ":memory:" or path.startswith("file:"):
        return None
    return str(Path(path).resolve())


def patient_events(db: sqlite_utils.Database, patient_id: str, upto: int | None = None,
                   structural_only: bool = False) -> list[dict]:
    """One patient's events in store order, as stored dicts."""
    sql = "SELECT data FROM events WHERE patient_id = ?"
    params: list = [patient_id]
    if structural_only:
        sql += " AND structural = 1"
    if upto is not None:
        sql += " AND position <= ?"
        params.append(upto)
    sql += " ORDER BY position"
    loads = orjson.loads
    return [loads(r[0]) for r in db.execute(sql, params).fetchall()]


def has_events_before(db: sqlite_utils.Database, patient_id: str, position: int) -> bool:
    return db.execute("SELECT 1 FROM events WHERE patient_id = ? AND position < ? LIMIT 1",
                      (patient_id, position)).fetchone() is not None
