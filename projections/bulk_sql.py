"""The fast rebuild of the medication read models: doses in SQL, the rest in Python.

Four events in five are doses. On a rebuild from a plain SQLite store (the events table
copied in SQL), their administration rows are made by one INSERT ... SELECT: the JSON fields
are read by SQLite and the drug comes from the orders just written. Python folds only the
structural events (orders, changes, transitions, weights, corrections), while the events
are being copied, and sums the local days while the indexes are built. The rows are exactly
those of the Python path (the incremental catch-up): the same IEEE products for mg,
integer microseconds for times; tests/integration/test_projections_property.py compares
the two.
"""
from __future__ import annotations

import sqlite3
from itertools import groupby
from operator import itemgetter
from pathlib import Path

import orjson

from mar.units import MASS_TO_MG

from .course import build_course
from .runner import Sink
from .timeline import zone

# unixepoch() gives whole seconds; stored times carry 6 fractional digits when they have any
AT_US = ("(unixepoch({x}) * 1000000 + CASE WHEN substr({x}, 20, 1) = '.' "
         "THEN CAST(substr({x}, 21, 6) AS INTEGER) ELSE 0 END)")
MG = "CASE {u} " + " ".join(f"WHEN '{unit}' THEN {factor!r}" for unit, factor in MASS_TO_MG.items()) + " END"


def rebuild(projection, db, load) -> None:
    """Fill the medication tables (empty, no secondary indexes). The structural events are
    read from the store file and folded while the events table is still being copied."""
    from .events_table import REFOLDED, store_file
    from .medication import structure_rows

    held = Sink(db, limit=10 ** 12)  # nothing written until the copy is done
    courses = {}
    loads = orjson.loads
    topics = ",".join(f"'{t}'" for t in sorted(_topics(REFOLDED)))
    table = load.store.recorder.events_table_name
    store = sqlite3.connect(Path(store_file(load.store)).as_uri() + "?mode=ro", uri=True)
    try:
        # the stored topic names the event type: no JSON to parse to pick the structural events
        rows = store.execute(
            f"SELECT originator_id, CAST(state AS TEXT) FROM {table} WHERE rowid <= ? AND topic IN ({topics}) "
            "ORDER BY originator_id, originator_version", (load.upto,))
        for _, group in groupby(rows, key=itemgetter(0)):
            events = [loads(j) for _, j in group]
            pid = events[0]["patient_id"]
            course = build_course(events, patient_id=pid)
            structure_rows(course, course.timezone, held)
            courses[pid] = course
    finally:
        store.close()
    load.wait()
    held.flush()
    sink = Sink(db)
    horizons = dict(db.execute(
        f"SELECT patient_id, MAX({AT_US.format(x='effective_at')}) FROM events GROUP BY patient_id"))
    db.execute("CREATE TEMP TABLE voided (patient_id TEXT, event_id TEXT, PRIMARY KEY (patient_id, event_id))")
    db.conn.executemany("INSERT OR IGNORE INTO temp.voided VALUES (?, ?)",
                        [(pid, eid) for pid, c in courses.items() for eid in c.voided])
    from .medication import patient_row

    db.conn.executemany("INSERT INTO patients VALUES (?,?,?,?,?,?)", [
        patient_row(pid, c.timezone, horizons.get(pid), c.died_at) for pid, c in courses.items()])
    _administrations(db)
    db.execute("DROP TABLE temp.voided")
    _daily_totals(projection, db, courses, horizons, sink, load)


def _topics(kinds) -> set[str]:
    """Every stored topic (current names and aliases of old ones) of these event types."""
    from mar.event_types import TOPIC_ALIASES, topic_for, type_for_topic

    found = {topic_for(kind) for kind in kinds}
    found |= {old for old in TOPIC_ALIASES if type_for_topic(old) in kinds}
    return found


def _administrations(db) -> None:
    at = AT_US.format(x="e.effective_at")
    mg = MG.format(u="e.data ->> '$.dose.unit'")
    db.execute(f"""
        INSERT INTO administrations
        SELECT d.patient_id, d.event_id, d.order_id, COALESCE(o.drug, 'unknown'), d.route, d.kind, d.effective_at,
               d.at_us, d.amount_mg
        FROM (
            SELECT e.patient_id, e.event_id, e.order_id, lower(e.data ->> '$.route') AS route,
                   e.data ->> '$.kind' AS kind, e.effective_at, {at} AS at_us,
                   (e.data ->> '$.dose.value') * {mg} AS amount_mg
            FROM events e
            WHERE e.type = 'dose_given'
              AND NOT EXISTS (SELECT 1 FROM temp.voided v WHERE v.patient_id = e.patient_id
                              AND v.event_id = e.event_id)
        ) d
        LEFT JOIN orders o ON o.patient_id = d.patient_id AND o.order_id = d.order_id""")


def _daily_totals(projection, db, courses: dict, horizons: dict, sink: Sink, load) -> None:
    """The days of every patient, in Python (fsum, local calendars) while the indexes are built."""
    doses = db.execute("SELECT patient_id, at_us, drug, route, amount_mg FROM administrations "
                       "ORDER BY patient_id").fetchall()
    load.in_background(_indexes, db)
    by_patient = {pid: [r[1:] for r in group] for pid, group in groupby(doses, key=itemgetter(0))}
    del doses
    for pid, course in courses.items():
        if not course.timezone:
            continue
        pieces = [(s.start, s.end, s.drug, s.route, s.mg_per_h) for s in course.segments]
        projection._totals_rows(pid, zone(course.timezone), by_patient.get(pid, ()), pieces, horizons.get(pid),
                                None, sink)
    load.wait()
    sink.flush()


def _indexes(db) -> None:
    from .events_table import EventsProjection
    from .medication import create_indexes

    EventsProjection().indexes(db)
    create_indexes(db)
