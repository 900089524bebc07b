"""What the read commands ask: the regimen at a time and the totals, after catching up.

Every function first brings the read models up to the store (read-your-writes). Without
`--at`/`--known-at`, daily totals come straight from the daily_totals table and hourly ones
from the administrations and rate_segments tables; with them, from the
patient's course folded as at that clinical time or as known at that recorded time.
Times given without a UTC offset are read in the patient's time zone; the answer always
echoes the instant it used.
"""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mar.errors import MarError, UnknownPatient

from . import report
from .course import Course, build_course
from .events_table import patient_events
from .mme import load_table
from .runner import Runner, projections_path

if TYPE_CHECKING:
    from mar.store import EventStore
from .timeline import EPOCH, ONE_US, day_bounds, iso, parse_time, zone
from .totals import Amount, amounts, course_inputs


class BadQuery(MarError):
    pass


def caught_up(store: EventStore) -> Runner:
    runner = Runner(store)
    runner.catch_up()
    return runner


@dataclass(frozen=True)
class StoreRef:
    """A store named by its URL: opened only if the read models are behind it."""

    url: str
    read_only: bool = False


class _Models:
    def __init__(self, conn: sqlite3.Connection):
        self.db = conn


@contextmanager
def read_models(source: "EventStore | StoreRef"):
    """The read models, caught up with the store (read-your-writes).

    Given a StoreRef to a SQLite store, the store's last position is read straight from
    the file: when the read models already have it, the event store (and its imports) is
    never opened, which keeps a read command well under half a second.
    """
    if isinstance(source, StoreRef):
        conn = _up_to_date(source)
        if conn is not None:
            try:
                yield _Models(conn)
            finally:
                conn.close()
            return
        from mar.store import EventStore

        with EventStore(source.url, read_only=source.read_only) as store, caught_up(store) as runner:
            yield runner
        return
    with caught_up(source) as runner:
        yield runner


def _up_to_date(ref: StoreRef) -> sqlite3.Connection | None:
    from .events_table import EventsProjection
    from .medication import MedicationProjection

    path = ref.url[len("sqlite:///"):] if ref.url.startswith("sqlite:///") else ref.url
    if "://" in path or path == ":memory:" or not Path(path).is_file():
        return None
    try:
        models = projections_path(ref.url)
    except MarError:
        return None
    if not Path(models).is_file():
        return None
    try:
        store = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            top = store.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0] or 0
        finally:
            store.close()
        conn = sqlite3.connect(models, timeout=30)
        have = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT name, position, version FROM _projections")}
    except sqlite3.Error:
        return None
    if all(have.get(p.name) == (top, p.version) for p in (EventsProjection, MedicationProjection)):
        return conn
    conn.close()
    return None


def patient_zone(runner: Runner, patient_id: str) -> ZoneInfo:
    row = runner.db.execute("SELECT timezone FROM patients WHERE patient_id = ?", (patient_id,)).fetchone()
    if row is None:
        raise UnknownPatient(patient_id)
    if row[0] is None:
        raise BadQuery(f"patient {patient_id!r} has no registration (time zone) in the record")
    return zone(row[0])


def when(text: str | None, tz: ZoneInfo, option: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_time(text, tz)
    except ValueError:
        raise BadQuery(f"{option}={text!r}: not an ISO 8601 time (for example 2007-11-14T12:00:00-08:00; "
                       "without an offset it is read in the patient's time zone)") from None


def day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadQuery(f"{option}={text!r}: not a date (YYYY-MM-DD, a local calendar day)") from None


def now_us() -> int:
    return (datetime.now(tz=EPOCH.tzinfo) - EPOCH) // ONE_US


def course_of(runner: Runner, patient_id: str, known_at: int | None, structural_only: bool) -> Course:
    events = patient_events(runner.db, patient_id, structural_only=structural_only)
    return build_course(events, known_at=known_at, patient_id=patient_id)


# --- regimen ------------------------------------------------------------------------------------


def regimen_at(store: "EventStore | StoreRef", patient_id: str, at: str | None = None, known_at: str | None = None) -> dict:
    """Every active medication of the patient at clinical time `at` (default: now)."""
    with read_models(store) as runner:
        tz = patient_zone(runner, patient_id)
        at_us = when(at, tz, "--at")
        known_us = when(known_at, tz, "--known-at")
        course = course_of(runner, patient_id, known_us, structural_only=True)
    result = report.regimen(course, now_us() if at_us is None else at_us, tz)
    if known_us is not None:
        result["known_at"] = iso(known_us, tz)
    return result


# --- totals -------------------------------------------------------------------------------------


def totals_for(store: "EventStore | StoreRef", patient_id: str, first: str | None = None, last: str | None = None,
               by: str = "day", mme_table: str | None = None, at: str | None = None,
               known_at: str | None = None) -> dict:
    """Amounts per local day (or hour) and drug and route, with MME under the chosen table."""
    if by not in ("day", "hour"):
        raise BadQuery(f"--by={by!r}: use day or hour")
    table = load_table(mme_table)
    d0, d1 = day(first, "--from"), day(last, "--to")
    if d0 and d1 and d1 < d0:
        raise BadQuery(f"--to={last} is before --from={first}")
    with read_models(store) as runner:
        tz = patient_zone(runner, patient_id)
        at_us = when(at, tz, "--at")
        known_us = when(known_at, tz, "--known-at")
        if at_us is None and known_us is None:
            days, hours, uncounted = _from_tables(runner, patient_id, tz, d0, d1, by)
        else:
            course = course_of(runner, patient_id, known_us, structural_only=False)
            until = course.horizon if at_us is None else at_us
            doses, pieces = course_inputs(course)
            days = amounts(doses, pieces, tz, until, "day", d0, d1)
            hours = amounts(doses, pieces, tz, until, "hour", d0, d1) if by == "hour" else None
            uncounted = [_uncounted(s.order_id, s.drug, s.route, s.rate, s.rate_unit, s.start, s.end, tz)
                         for s in course.segments if s.mg_per_h is None]
    result = report.totals(patient_id, tz, days, table, hours)
    result.update({"from": first, "to": last})
    if at_us is not None:
        result["at"] = iso(at_us, tz)
    if known_us is not None:
        result["known_at"] = iso(known_us, tz)
    if uncounted:
        result["uncounted"] = uncounted
    return result


def _from_tables(runner: Runner, patient_id: str, tz: ZoneInfo, d0: date | None, d1: date | None, by: str):
    where, params = "patient_id = ?", [patient_id]
    if d0:
        where += " AND date >= ?"
        params.append(d0.isoformat())
    if d1:
        where += " AND date <= ?"
        params.append(d1.isoformat())
    db = runner.db
    days = [Amount(d, None, 0, day_bounds(date.fromisoformat(d), tz)[0], drug, route, mg)
            for d, drug, route, mg in db.execute(
                f"SELECT date, drug, route, amount_mg FROM daily_totals WHERE {where}", params).fetchall()]
    hours = None
    if by == "hour":
        lo = day_bounds(d0, tz)[0] if d0 else -(2 ** 62)
        hi = day_bounds(d1, tz)[1] if d1 else 2 ** 62
        doses = db.execute("SELECT at_us, drug, route, amount_mg FROM administrations WHERE patient_id = ? "
                           "AND at_us >= ? AND at_us < ?", (patient_id, lo, hi)).fetchall()
        pieces = db.execute("SELECT start_us, end_us, drug, route, mg_per_h FROM rate_segments "
                            "WHERE patient_id = ?", (patient_id,)).fetchall()
        horizon = db.execute("SELECT horizon_us FROM patients WHERE patient_id = ?", (patient_id,)).fetchone()[0]
        hours = amounts(doses, pieces, tz, horizon, "hour", d0, d1)
    uncounted = [_uncounted(*row, tz) for row in db.execute(
        "SELECT order_id, drug, route, rate, rate_unit, start_us, end_us FROM rate_segments "
        "WHERE patient_id = ? AND mg_per_h IS NULL ORDER BY start_us", (patient_id,)).fetchall()]
    return days, hours, uncounted


def _uncounted(order_id, drug, route, rate, unit, start, end, tz) -> dict:
    return {"order_id": order_id, "drug": drug, "route": route, "rate": rate, "rate_unit": unit,
            "from": iso(start, tz), "to": iso(end, tz),
            "reason": "weight-based rate without a recorded weight: not counted (record the weight)"}


def project(store: EventStore, rebuild: bool = False) -> dict:
    """Catch the read models up (or rebuild them from zero); how many events, where, how fast."""
    import time

    t0 = time.perf_counter()
    with Runner(store) as runner:
        count = runner.rebuild() if rebuild else runner.catch_up()
        positions = runner.positions()
        path = runner.path
    return {"events": count, "seconds": time.perf_counter() - t0, "path": path, "positions": positions,
            "rebuilt": rebuild}
