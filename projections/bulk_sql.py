"""The fast rebuild of the medication read models: doses in SQL, the rest in Python.

Four events in five are doses. On a rebuild from a plain SQLite store the work is spread
over both cores (SQLite releases the GIL inside a statement):

1. at once: the `events` copy and its index (events_table.bulk_copy, read-model
   connection); the fields of every non-structural event read by SQLite into a scratch
   table (`medication_facts`, second connection, BulkLoad.connect); in Python, the fold of
   the structural events (orders, changes, transitions, weights, corrections), picked by
   their stored topic, whose rows are written as soon as the copy leaves the connection;
2. then, at once: the administrations as one INSERT ... SELECT from the scratch table (the
   drug from the orders just written) and the indexes, on the read-model connection; on
   the scratch connection, the doses dated in SQL (local day from a table of each
   patient's UTC offsets, timeline.offset_spans) and sorted by patient, day, drug and
   route, which Python adds up with math.fsum per day, with the infusions.

The rows are exactly those of the Python path (the incremental catch-up): the same IEEE
products for mg, integer microseconds for times, the local days of the same offsets, and
fsum, whose result does not depend on how the contributions were gathered;
tests/integration/test_projections_property.py compares the two.
"""
from __future__ import annotations

import sqlite3
from bisect import bisect_right
from datetime import timedelta
from itertools import groupby
from operator import itemgetter
from pathlib import Path

import orjson

from mar.units import MASS_TO_MG

from .course import build_course
from .runner import Sink
from .timeline import DAY_US, EPOCH_DATE, day_start, offset_spans, zone

# unixepoch() gives whole seconds; stored times carry 6 fractional digits when they have any
AT_US = ("(unixepoch({x}) * 1000000 + CASE WHEN substr({x}, 20, 1) = '.' "
         "THEN CAST(substr({x}, 21, 6) AS INTEGER) ELSE 0 END)")
MG = "CASE {u} " + " ".join(f"WHEN '{unit}' THEN {factor!r}" for unit, factor in MASS_TO_MG.items()) + " END"
# days since the epoch of a local instant x, rounded down (SQLite's / and % round toward zero)
LOCAL_DAY = f"(({{x}}) - ((({{x}}) % {DAY_US}) + {DAY_US}) % {DAY_US}) / {DAY_US}"


def rebuild(projection, db, load) -> None:
    """Fill the medication tables (empty, no secondary indexes)."""
    from .events_table import REFOLDED, store_file, topics_of

    table = load.store.recorder.events_table_name
    structural = topics_of(REFOLDED)
    scratch = load.connect()
    load.in_background(_facts, scratch, table, load.upto, structural, topics_of({"dose_given"}))
    courses, held = _fold(db, Path(store_file(load.store)).as_uri() + "?mode=ro", table, load.upto, structural,
                          load.db_free)
    load.wait()
    horizons = _horizons(scratch, courses)
    dated = _Dated(scratch, courses)
    fetching = load.in_background(dated.fetch)
    held.flush()
    _patients(db, courses, horizons)
    _voided(db, courses)
    load.in_background(_administrations, db)
    fetching.wait()
    sink = Sink(db, limit=10 ** 12)  # held until the administrations and indexes are written
    _daily_totals(projection, courses, horizons, dated, sink)
    load.wait()
    sink.flush()


def _facts(c, table: str, upto: int, structural: set[str], doses: set[str]) -> None:
    """mar_scratch.medication_facts: every non-structural event (doses and the rest) with the
    fields the administrations and the horizons need, in store order; medication_spans: their
    time span per patient. On its own connection."""
    from .events_table import stream_patients

    stream_patients(c, f"mar_store.{table}", upto)
    c.execute("CREATE TABLE medication_facts (patient_id TEXT, position INTEGER, dose INTEGER, event_id TEXT, "
              "order_id TEXT, route TEXT, kind TEXT, effective_at TEXT, at_us INTEGER, amount_mg REAL)")
    c.execute(f"""
        INSERT INTO medication_facts
        SELECT s.patient_id, e.rowid, e.topic IN ({_quoted(doses)}), e.state ->> '$.event_id',
               e.state ->> '$.order_id', lower(e.state ->> '$.route'), e.state ->> '$.kind', e.effective_at,
               {AT_US.format(x='e.effective_at')},
               (e.state ->> '$.dose.value') * {MG.format(u="(e.state ->> '$.dose.unit')")}
        FROM (SELECT rowid, originator_id, topic, CAST(state AS TEXT) AS state,
                     CAST(state AS TEXT) ->> '$.effective_at' AS effective_at
              FROM mar_store.{table} WHERE rowid <= ? AND topic NOT IN ({_quoted(structural)})) e
        CROSS JOIN temp.stream_patients s ON s.originator_id = e.originator_id
        ORDER BY e.rowid""", (upto,))
    # per patient: the latest clinical time of these events, and the span of the doses
    c.execute("CREATE TABLE medication_spans AS SELECT patient_id, MAX(at_us) AS latest, "
              "MIN(CASE WHEN dose THEN at_us END) AS first_dose, MAX(CASE WHEN dose THEN at_us END) AS last_dose "
              "FROM medication_facts GROUP BY patient_id")


def _quoted(names: set[str]) -> str:
    return ",".join(f"'{n}'" for n in sorted(names))


def _fold(db, store_uri: str, table: str, upto: int, topics: set[str], db_free) -> tuple[dict, Sink]:
    """Each patient's structural events folded into a Course. Their rows are written once
    the read-model connection is done copying the events (until then they are held)."""
    from .medication import structure_rows

    held = Sink(db, limit=10 ** 12)
    courses = {}
    loads = orjson.loads
    store = sqlite3.connect(store_uri, uri=True)
    try:
        rows = store.execute(
            f"SELECT originator_id, CAST(state AS TEXT) FROM {table} WHERE rowid <= ? AND topic IN ({_quoted(topics)}) "
            "ORDER BY originator_id, originator_version", (upto,))
        for _, group in groupby(rows, key=itemgetter(0)):
            events = [loads(j) for _, j in group]
            pid = events[0]["patient_id"]
            course = build_course(events, patient_id=pid)
            structure_rows(course, course.timezone, held)
            courses[pid] = course
            if held.count >= 5_000 and db_free():
                held.flush()
    finally:
        store.close()
    return courses, held


def _horizons(scratch, courses: dict) -> dict:
    """The latest clinical time of each patient: of their structural events (folded) and of
    the rest (facts)."""
    horizons = dict(scratch.execute("SELECT patient_id, latest FROM medication_spans"))
    for pid, course in courses.items():
        h = horizons.get(pid)
        if course.horizon is not None and (h is None or course.horizon > h):
            horizons[pid] = course.horizon
    return horizons


def _patients(db, courses: dict, horizons: dict) -> None:
    """A row per patient with events; one without structural events gets an empty course."""
    from .medication import patient_row

    for pid in horizons.keys() - courses.keys():
        courses[pid] = build_course([], patient_id=pid)
    db.conn.executemany("INSERT INTO patients VALUES (?,?,?,?,?,?)", [
        patient_row(pid, c.timezone, horizons.get(pid), c.died_at) for pid, c in courses.items()])


def _voided(db, courses: dict) -> None:
    db.execute("CREATE TEMP TABLE medication_voided (patient_id TEXT, event_id TEXT, PRIMARY KEY (patient_id, event_id)) "
               "WITHOUT ROWID")
    db.conn.executemany("INSERT OR IGNORE INTO temp.medication_voided VALUES (?, ?)", _voided_rows(courses))


def _voided_rows(courses: dict) -> list[tuple[str, str]]:
    return [(pid, eid) for pid, c in courses.items() for eid in c.voided]


def _administrations(db) -> None:
    """The doses not entered in error, the drug from their order; then the indexes."""
    db.execute("""
        INSERT INTO administrations
        SELECT f.patient_id, f.event_id, f.order_id, COALESCE(o.drug, 'unknown'), f.route, f.kind, f.effective_at,
               f.at_us, f.amount_mg
        FROM mar_scratch.medication_facts f
        LEFT JOIN orders o ON o.patient_id = f.patient_id AND o.order_id = f.order_id
        WHERE f.dose AND NOT EXISTS (SELECT 1 FROM temp.medication_voided v WHERE v.patient_id = f.patient_id
                                     AND v.event_id = f.event_id)""")
    db.execute("DROP TABLE temp.medication_voided")
    _indexes(db)


class _Dated:
    """The doses that count, dated in SQL on the scratch connection: (patient, local day
    number, drug, route, mg) sorted by the first four."""

    def __init__(self, scratch, courses: dict):
        self.scratch = scratch
        self.rows: list[tuple] = []
        c = scratch
        # temporary tables: private to this connection, so the read-model connection's lock
        # on the scratch file (it reads medication_facts meanwhile) does not stand in the way
        c.execute("CREATE TEMP TABLE drugs (patient_id TEXT, order_id TEXT, drug TEXT, "
                  "PRIMARY KEY (patient_id, order_id)) WITHOUT ROWID")
        c.executemany("INSERT INTO temp.drugs VALUES (?,?,?)", [
            (pid, oid, o.drug) for pid, course in courses.items()
            for orders in (course.voided_orders, course.orders) for oid, o in orders.items()
            if orders is course.orders or oid not in course.orders])
        c.execute("CREATE TEMP TABLE voided (patient_id TEXT, event_id TEXT, PRIMARY KEY (patient_id, event_id)) "
                  "WITHOUT ROWID")
        c.executemany("INSERT OR IGNORE INTO temp.voided VALUES (?, ?)", _voided_rows(courses))
        c.execute("CREATE TEMP TABLE offsets (patient_id TEXT, start_us INTEGER, end_us INTEGER, offset_us INTEGER, "
                  "PRIMARY KEY (patient_id, start_us)) WITHOUT ROWID")
        c.executemany("INSERT INTO temp.offsets VALUES (?,?,?,?)", _offset_rows(c, courses))

    def fetch(self) -> None:
        self.rows = self.scratch.execute(f"""
            SELECT f.patient_id, {LOCAL_DAY.format(x='f.at_us + o.offset_us')}, COALESCE(d.drug, 'unknown'),
                   f.route, f.amount_mg
            FROM medication_facts f
            JOIN temp.offsets o ON o.patient_id = f.patient_id AND o.start_us <= f.at_us AND f.at_us < o.end_us
            LEFT JOIN temp.drugs d ON d.patient_id = f.patient_id AND d.order_id = f.order_id
            WHERE f.dose AND NOT EXISTS (SELECT 1 FROM temp.voided v WHERE v.patient_id = f.patient_id
                                         AND v.event_id = f.event_id)
            ORDER BY 1, 2, 3, 4""").fetchall()


def _offset_rows(c, courses: dict) -> list[tuple]:
    """Each patient's UTC offsets over the span of their doses: the spans of their zone
    (timeline.offset_spans, computed once per zone) that overlap it."""
    ranges = c.execute("SELECT patient_id, first_dose, last_dose FROM medication_spans "
                       "WHERE first_dose IS NOT NULL").fetchall()
    zones: dict[str, list[tuple]] = {}
    for pid, lo, hi in ranges:
        course = courses.get(pid)
        if course is not None and course.timezone:
            zones.setdefault(course.timezone, []).append((pid, lo, hi))
    rows = []
    for name, patients in zones.items():
        spans = offset_spans(zone(name), min(p[1] for p in patients), max(p[2] for p in patients))
        starts = [span[0] for span in spans]
        for pid, lo, hi in patients:
            first = bisect_right(starts, lo) - 1
            last = bisect_right(starts, hi) - 1
            rows += [(pid, *span) for span in spans[first:last + 1]]
    return rows


def _daily_totals(projection, courses: dict, horizons: dict, dated: _Dated, sink: Sink) -> None:
    """The days of every patient: doses dated in SQL, infusions split by `amounts`, all added
    with fsum (the administrations and indexes are being written meanwhile)."""
    by_patient = {pid: list(group) for pid, group in groupby(dated.rows, key=itemgetter(0))}
    dated.rows = []
    names: dict[int, object] = {}
    for pid, course in courses.items():
        if not course.timezone:
            continue
        tz = zone(course.timezone)
        parts: dict[tuple, list[float]] = {}
        for (_, n, drug, route), group in groupby(by_patient.get(pid, ()), key=itemgetter(0, 1, 2, 3)):
            day = names.get(n)
            if day is None:
                day = names[n] = EPOCH_DATE + timedelta(days=n)
            parts[(day, None, 0, day_start(day, tz), drug, route)] = [r[4] for r in group]
        pieces = [(s.start, s.end, s.drug, s.route, s.mg_per_h) for s in course.segments]
        projection._totals_rows(pid, tz, (), pieces, horizons.get(pid), None, sink, parts)


def _indexes(db) -> None:
    from .events_table import EventsProjection
    from .medication import create_indexes

    EventsProjection().indexes(db)
    create_indexes(db)
