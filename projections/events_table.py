"""The `events` read model: every stored event, one row each, findable by patient.

A row holds the position, the patient, `structural` (1 for the events that shape orders,
rate segments and lists, plus corrections, so that a patient's course can be refolded
without reading their doses) and the JSON as stored (`data`). The view `event_fields` adds
the fields people filter on (event id, type, clinical and recorded time, who recorded it,
order), read from the JSON when asked. Version 1 stored those fields as columns: a rebuild
then parsed every event in SQL and wrote a quarter more bytes, for columns no read model
reads (SQLite computes even VIRTUAL generated columns on every insert, hence a view).
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

COLUMNS = ("position", "patient_id", "structural", "data")
FIELDS = ("event_id", "type", "effective_at", "recorded_at", "recorded_by", "order_id")  # in the view
REFOLDED = STRUCTURAL | {"entered_in_error"}


class EventsProjection(Projection):
    name = "events"
    version = 2
    tables = ("events",)
    views = ("event_fields",)

    def create(self, db: sqlite_utils.Database) -> None:
        db["events"].create({"position": int, "patient_id": str, "structural": int, "data": str}, pk="position")
        fields = ", ".join(f"json_extract(data, '$.{f}') AS {f}" for f in FIELDS)
        db.execute(f"CREATE VIEW event_fields AS SELECT position, patient_id, {fields}, structural, data FROM events")

    def indexes(self, db: sqlite_utils.Database) -> None:
        db["events"].create_index(["patient_id", "structural", "position"], index_name="events_by_patient",
                                  if_not_exists=True)

    def apply(self, db: sqlite_utils.Database, batch: Batch) -> None:
        db.conn.executemany(f"INSERT INTO events VALUES ({','.join('?' * len(COLUMNS))})",
                            [row(pos, e) for pos, e in batch.events])

    def bulk_all(self, db: sqlite_utils.Database, load: BulkLoad) -> bool:
        if not sql_copy_possible(load.store, load.attached):
            return False
        load.copied.add("events")
        load.writing.append(load.in_background(self._copy_and_index, db, load))
        return True

    def _copy_and_index(self, db: sqlite_utils.Database, load: BulkLoad) -> None:
        bulk_copy(db, load.store, load.upto, load.attached)
        self.indexes(db)

    def bulk_patient(self, db: sqlite_utils.Database, patient_id: str, events: list[Stored], sink: Sink) -> None:
        sink.add("events", [row(x.position, x.data, x.t, x.text) for x in events])


def row(pos: int, e: dict, t: int | None = None, text: str | None = None) -> tuple:
    return (pos, e["patient_id"], 1 if e["type"] in REFOLDED else 0,
            orjson.dumps(e).decode() if text is None else text)


def bulk_copy(db: sqlite_utils.Database, store: EventStore, upto: int, attached: str | None) -> bool:
    """Copy the store's rows into `events` inside SQLite, without parsing them, when the
    store is a plain SQLite file (attached to db) whose rows need no upcasting, decryption
    or decompression. A stream holds one patient's events (mar.store.stream_id), so the
    patient comes from the stream and the JSON is read once per stream; `structural` comes
    from the stored topic."""
    if not sql_copy_possible(store, attached):
        return False
    table = f"{attached}.{store.recorder.events_table_name}"
    refolded = ",".join(f"'{t}'" for t in sorted(topics_of(REFOLDED)))
    stream_patients(db, table, upto)
    db.execute(
        "INSERT INTO events "
        f"SELECT e.rowid, s.patient_id, e.topic IN ({refolded}), CAST(e.state AS TEXT) "
        f"FROM {table} e CROSS JOIN temp.stream_patients s ON s.originator_id = e.originator_id "
        "WHERE e.rowid <= ? ORDER BY e.rowid", (upto,))
    db.execute("DROP TABLE temp.stream_patients")
    return True


def stream_patients(db: sqlite_utils.Database, table: str, upto: int) -> None:
    """temp.stream_patients: the patient of each stream, read from its first event."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS stream_patients (originator_id TEXT PRIMARY KEY, patient_id TEXT) "
               "WITHOUT ROWID")
    db.execute("DELETE FROM temp.stream_patients")
    db.execute(
        "INSERT INTO temp.stream_patients SELECT originator_id, json_extract(CAST(state AS TEXT), '$.patient_id') "
        f"FROM {table} WHERE rowid IN (SELECT MIN(rowid) FROM {table} WHERE rowid <= ? GROUP BY originator_id)",
        (upto,))


def topics_of(kinds) -> set[str]:
    """Every stored topic (current names and aliases of old ones) of these event types."""
    from mar.event_types import TOPIC_ALIASES, topic_for, type_for_topic

    found = {topic_for(kind) for kind in kinds}
    found |= {old for old in TOPIC_ALIASES if type_for_topic(old) in kinds}
    return found


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
