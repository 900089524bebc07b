"""The fast rebuild of the medication read models: doses in SQL, the rest in Python.

Four events in five are doses. On a rebuild from a plain SQLite store (the events table
already copied in SQL), their administration rows are made by one INSERT ... SELECT: the
JSON fields are read by SQLite, the drug comes from the orders just written, the local date
and hour from a table of the UTC offsets of each time zone over the span of the data. Python
folds only the structural events (orders, changes, transitions, weights, corrections) and
sums the days. The rows are exactly those of the Python path (the incremental catch-up):
the same IEEE products for mg, integer microseconds for times, the offsets of the same
zoneinfo; tests/integration/test_projections_property.py compares the two.
"""
from __future__ import annotations

from datetime import date
import sqlite3
from itertools import groupby
from operator import itemgetter
from pathlib import Path

import orjson

from mar.units import MASS_TO_MG

from .course import build_course
from .runner import Sink
from .timeline import DAY_US, clock, day_bounds, zone

# unixepoch() gives whole seconds; stored times carry 6 fractional digits when they have any
AT_US = ("(unixepoch({x}) * 1000000 + CASE WHEN substr({x}, 20, 1) = '.' "
         "THEN CAST(substr({x}, 21, 6) AS INTEGER) ELSE 0 END)")
MG = "CASE {u} " + " ".join(f"WHEN '{unit}' THEN {factor!r}" for unit, factor in MASS_TO_MG.items()) + " END"
NEVER = -(2 ** 62)


def rebuild(projection, db, load) -> None:
    """Fill the medication tables (empty, no secondary indexes). The structural events are
    read from the store file and folded while the events table is still being copied."""
    from .events_table import REFOLDED, store_file
    from .medication import structure_rows

    held = Sink(db, limit=10 ** 12)  # nothing written until the copy is done
    courses = {}
    loads = orjson.loads
    kinds = ",".join(f"'{t}'" for t in sorted(REFOLDED))
    table = load.store.recorder.events_table_name
    store = sqlite3.connect(Path(store_file(load.store)).as_uri() + "?mode=ro", uri=True)
    try:
        rows = store.execute(
            f"SELECT originator_id, j FROM (SELECT originator_id, originator_version, CAST(state AS TEXT) AS j "
            f"FROM {table} WHERE rowid <= ?) WHERE j ->> '$.type' IN ({kinds}) "
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
    _offsets(db, {c.timezone for c in courses.values() if c.timezone})
    _administrations(db)
    db.execute("DROP TABLE temp.voided")
    db.execute("DROP TABLE temp.tz_offsets")
    _daily_totals(projection, db, courses, horizons, sink, load)


def _offsets(db, zones: set[str]) -> None:
    """temp.tz_offsets(tz, start_us, offset_us): every UTC offset of each zone over the data."""
    db.execute("CREATE TEMP TABLE tz_offsets (tz TEXT, start_us INTEGER, offset_us INTEGER, "
               "PRIMARY KEY (tz, start_us))")
    lo, hi = db.execute(f"SELECT MIN({AT_US.format(x='effective_at')}), MAX({AT_US.format(x='effective_at')}) "
                        "FROM events WHERE type = 'dose_given'").fetchone()
    if lo is None:
        return
    rows = []
    for name in sorted(zones):
        rows += [(name, start, off) for start, off in offset_changes(name, lo - 2 * DAY_US, hi + 2 * DAY_US)]
    db.conn.executemany("INSERT INTO temp.tz_offsets VALUES (?,?,?)", rows)


def offset_changes(name: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """(first instant, UTC offset) of each offset in force in [lo, hi], found by probing each
    day and bisecting to the second (zoneinfo changes offsets on whole seconds)."""
    local = clock(zone(name))
    exact = local._exact
    out = [(NEVER, exact(lo))]
    t = lo
    while t < hi:
        nxt = min(t + DAY_US, hi)
        if exact(nxt) != exact(t):
            a, b = t // 1_000_000, -(-nxt // 1_000_000)  # seconds: offset(a) old, offset(b) new
            while b - a > 1:
                mid = (a + b) // 2
                if exact(mid * 1_000_000) == exact(t):
                    a = mid
                else:
                    b = mid
            out.append((b * 1_000_000, exact(b * 1_000_000)))
        t = nxt
    return out


def _administrations(db) -> None:
    at = AT_US.format(x="e.effective_at")
    mg = MG.format(u="e.data ->> '$.dose.unit'")
    db.execute(f"""
        INSERT INTO administrations
        SELECT patient_id, event_id, order_id, drug, route, kind, effective_at, at_us,
               CASE WHEN local_us IS NULL THEN NULL ELSE date(local_us / 1000000, 'unixepoch') END,
               CASE WHEN local_us IS NULL THEN NULL ELSE (local_us % {DAY_US}) / 3600000000 END,
               amount_mg
        FROM (
            SELECT d.*, d.at_us + (SELECT t.offset_us FROM temp.tz_offsets t WHERE t.tz = p.timezone
                                   AND t.start_us <= d.at_us ORDER BY t.start_us DESC LIMIT 1) AS local_us,
                   COALESCE(o.drug, 'unknown') AS drug
            FROM (
                SELECT e.patient_id, e.event_id, e.order_id, lower(e.data ->> '$.route') AS route,
                       e.data ->> '$.kind' AS kind, e.effective_at, {at} AS at_us,
                       (e.data ->> '$.dose.value') * {mg} AS amount_mg
                FROM events e
                WHERE e.type = 'dose_given'
                  AND NOT EXISTS (SELECT 1 FROM temp.voided v WHERE v.patient_id = e.patient_id
                                  AND v.event_id = e.event_id)
            ) d
            LEFT JOIN orders o ON o.patient_id = d.patient_id AND o.order_id = d.order_id
            LEFT JOIN patients p ON p.patient_id = d.patient_id
        )""")


def _daily_totals(projection, db, courses: dict, horizons: dict, sink: Sink, load) -> None:
    """Doses come already dated (SQL); segments are split by `amounts`; fsum makes the sum
    independent of how the contributions were gathered. The indexes are built meanwhile."""
    doses = db.execute("SELECT patient_id, date, drug, route, amount_mg FROM administrations "
                       "WHERE date IS NOT NULL ORDER BY patient_id").fetchall()
    load.in_background(_indexes, db)
    by_patient = {pid: [r[1:] for r in group] for pid, group in groupby(doses, key=itemgetter(0))}
    del doses
    for pid, course in courses.items():
        if not course.timezone:
            continue
        tz = zone(course.timezone)
        keys: dict[str, tuple] = {}
        parts: dict[tuple, list[float]] = {}
        for day, drug, route, mg in by_patient.get(pid, ()):
            key = keys.get(day)
            if key is None:
                d = date.fromisoformat(day)
                key = keys[day] = (d, None, 0, day_bounds(d, tz)[0])
            parts.setdefault(key + (drug, route), []).append(mg)
        pieces = [(s.start, s.end, s.drug, s.route, s.mg_per_h) for s in course.segments]
        projection._totals_rows(pid, tz, (), pieces, horizons.get(pid), None, sink, parts)
    load.wait()
    sink.flush()


def _indexes(db) -> None:
    from .events_table import EventsProjection
    from .medication import create_indexes

    EventsProjection().indexes(db)
    create_indexes(db)
