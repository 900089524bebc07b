"""The medication read models: orders, changes, rate segments, administrations, lists, totals.

Tables (one row per ...):
- patients: patient (time zone, horizon = latest clinical time charted, death);
- orders: order, its final state and status (active, on-hold, stopped, entered-in-error);
- order_changes: change, hold, resume or discontinuation of an order;
- rate_segments: constant rate of an infusion or PCA basal, in mg/h;
- administrations: discrete dose given (corrected ones removed);
- listed_medications: line of a discharge list, active until the next admission or death;
- transitions: admission, transfer, discharge, readmission (with the orders active before);
- weights: body weight recorded;
- daily_totals: amount per local day per drug and route, in mg, and MME under the default
  table (view daily_mme: MME per patient and day). Hourly totals are computed on demand
  from administrations and rate_segments (the same function, so they add up to the days).

Catch-up cost follows the new events, not the store: a dose adds one administration row and
recomputes its local day; a structural event (order, change, transition, weight, correction
of one of those) refolds only that patient's structural events and recomputes only the days
whose rate segments changed. A new patient, or one with many new events, is refolded whole.
Both ways give exactly the same rows (tests/integration/test_projections_property.py).
A running infusion (no end yet) is counted up to the patient's horizon: the latest clinical
time charted for them.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Iterable

from typing import TYPE_CHECKING

import orjson

from mar.catalog import default_catalog

from .course import STRUCTURAL, Course, administration, build_course
from .events_table import has_events_before, patient_events
from .mme import DEFAULT_TABLE, load_table
from .report import dosing_fields, opioid_mme
from .runner import Batch, Projection, Sink, Stored, chunks
from .timeline import US_PER_HOUR, day_bounds, days_between, instant, iso, local_day, zone
from .totals import amounts, days_touched

if TYPE_CHECKING:
    import sqlite_utils

# A known patient with more new events than this in one batch is refolded whole.
REFOLD_ABOVE = 400

TABLES = ("patients", "orders", "order_changes", "rate_segments", "administrations",
          "listed_medications", "transitions", "weights", "daily_totals")
PER_PATIENT = ("orders", "order_changes", "rate_segments", "listed_medications", "transitions", "weights")


class MedicationProjection(Projection):
    name = "medication"
    version = 3
    tables = TABLES
    views = ("daily_mme",)

    def __init__(self, refold_above: int = REFOLD_ABOVE):
        self.refold_above = refold_above
        self.catalog = default_catalog()
        self.mme_table = load_table(DEFAULT_TABLE)

    def create(self, db: sqlite_utils.Database) -> None:
        create_tables(db)

    def indexes(self, db: sqlite_utils.Database) -> None:
        create_indexes(db)

    def bulk_all(self, db, load) -> bool:
        """From a plain SQLite store whose events are being copied in SQL: doses in SQL too."""
        from .bulk_sql import rebuild

        if "events" not in load.copied:
            return False
        rebuild(self, db, load)
        return True

    def bulk_patient(self, db, patient_id: str, events: list[Stored], sink: Sink) -> None:
        course = build_course([x.data for x in events], patient_id=patient_id, times=[x.t for x in events])
        self._course_rows(course, sink)

    def apply(self, db: sqlite_utils.Database, batch: Batch) -> None:
        by_patient: dict[str, list[dict]] = defaultdict(list)
        for _, e in batch.events:
            by_patient[e["patient_id"]].append(e)
        changed = batch.changes.setdefault("days", {})
        for patient_id, events in by_patient.items():
            state = _patient_row(db, patient_id)
            if state is None and not has_events_before(db, patient_id, batch.first):
                days = self._refold(db, patient_id, events, None)
            elif state is None or len(events) > self.refold_above:
                days = self._refold(db, patient_id, patient_events(db, patient_id, batch.upto), state)
            else:
                days = _Incremental(self, db, patient_id, state, batch.upto).apply(events)
            changed.setdefault(patient_id, set()).update(days)

    # --- whole patient ------------------------------------------------------------------

    def _refold(self, db, patient_id: str, events: list[dict], state: dict | None) -> set[date]:
        course = build_course(events, patient_id=patient_id)
        for table in (*PER_PATIENT, "patients", "administrations", "daily_totals"):
            db.execute(f"DELETE FROM {table} WHERE patient_id = ?", (patient_id,))
        sink = Sink(db)
        days = self._course_rows(course, sink)
        sink.flush()
        return days

    def _course_rows(self, course: Course, sink: Sink) -> set[date]:
        """Every row of one patient from their whole course; the local days it covers."""
        pid = course.patient_id
        tz = zone(course.timezone) if course.timezone else None
        structure_rows(course, course.timezone, sink)
        sink.add("administrations", administration_rows(pid, [
            (a.event_id, a.order_id, a.drug, a.route, a.kind, a.effective_at, a.at, a.mg)
            for a in course.administrations]))
        sink.add("patients", [patient_row(pid, course.timezone, course.horizon, course.died_at)])
        if tz is None:
            return set()
        doses = [(a.at, a.drug, a.route, a.mg) for a in course.administrations]
        pieces = [(s.start, s.end, s.drug, s.route, s.mg_per_h) for s in course.segments]
        self._totals_rows(pid, tz, doses, pieces, course.horizon, None, sink)
        return days_touched(pieces, doses, tz, course.horizon)

    # --- totals -------------------------------------------------------------------------

    def _totals_rows(self, patient_id: str, tz, doses, pieces, horizon, only: set[date] | None,
                     sink: Sink, parts: dict | None = None) -> None:
        """Daily totals rows of the given local days (all days when only is None)."""
        first = min(only) if only else None
        last = max(only) if only else None
        wanted = None if only is None else {d.isoformat() for d in only}
        daily = [r for r in amounts(doses, pieces, tz, horizon, "day", first, last, parts)
                 if wanted is None or r.date in wanted]
        table, catalog = self.mme_table, self.catalog
        rows = []
        for r in daily:
            drug = catalog.drug(r.drug)
            opioid = drug is not None and drug.is_opioid
            mme = None
            if opioid:
                d0, d1 = day_bounds(date.fromisoformat(r.date), tz)
                mme = opioid_mme(table, catalog, r.drug, r.route, r.amount_mg, (d1 - d0) / US_PER_HOUR)
            rows.append((patient_id, r.date, r.drug, r.route, r.amount_mg, 1 if opioid else 0, mme, table.name))
        sink.add("daily_totals", rows)


class _Incremental:
    """Apply a few new events of a patient already projected."""

    def __init__(self, projection: MedicationProjection, db, patient_id: str, state: dict, upto: int):
        self.p = projection
        self.db = db
        self.patient_id = patient_id
        self.state = state
        self.upto = upto
        self.tz_name = state["timezone"]
        self.died = state["died_at_us"]
        self.dirty: set[date] = set()

    def apply(self, events: list[dict]) -> set[date]:
        db, pid = self.db, self.patient_id
        old_horizon = self.state["horizon_us"]
        horizon = old_horizon
        for e in events:
            t = instant(e["effective_at"])
            horizon = t if horizon is None or t > horizon else horizon
        doses = [e for e in events if e["type"] == "dose_given"]
        dose_ids = {e["event_id"] for e in doses}
        corrections = [e for e in events if e["type"] == "entered_in_error"]
        dose_fixes = [e for e in corrections
                      if e["target_event_id"] in dose_ids or _is_administration(db, pid, e["target_event_id"])]
        refold = any(e["type"] in STRUCTURAL for e in events) or len(dose_fixes) < len(corrections)
        old_tz = self.tz_name
        segments_before = _segments(db, pid)
        if refold:
            self._refold_structure(segments_before, old_horizon, horizon)
        tz = zone(self.tz_name) if self.tz_name else None
        if tz is not None and old_tz == self.tz_name:
            self._horizon_moved(segments_before, old_horizon, horizon, tz)
        drugs = _drug_map(db, pid)
        new_rows = [(e["event_id"], e["order_id"], drugs.get(e["order_id"]) or "unknown", e["route"].lower(),
                     e["kind"], e["effective_at"], instant(e["effective_at"]), _dose_mg(e)) for e in doses]
        sink = Sink(db)
        sink.add("administrations", administration_rows(pid, new_rows))
        sink.flush()
        if tz is not None:
            self.dirty.update(local_day(r[6], tz) for r in new_rows)
        for e in dose_fixes:
            self._remove_administration(e["target_event_id"], tz)
        db.execute("DELETE FROM patients WHERE patient_id = ?", (pid,))
        db.execute("INSERT INTO patients VALUES (?,?,?,?,?,?)", patient_row(pid, self.tz_name, horizon, self.died))
        if tz is None:
            return set()
        if old_tz != self.tz_name:  # a new calendar: every day is recomputed
            db.execute("DELETE FROM daily_totals WHERE patient_id = ?", (pid,))
            self.dirty = _all_days(db, pid, tz, horizon)
        self._recompute_days(tz, horizon)
        return self.dirty

    def _refold_structure(self, before: list[tuple], old_horizon, horizon) -> None:
        db, pid = self.db, self.patient_id
        course = build_course(patient_events(db, pid, self.upto, structural_only=True), patient_id=pid)
        old_drugs = _drug_map(db, pid)
        for table in PER_PATIENT:
            db.execute(f"DELETE FROM {table} WHERE patient_id = ?", (pid,))
        sink = Sink(db)
        structure_rows(course, course.timezone, sink)
        sink.flush()
        self.died = course.died_at
        new_drugs = _drug_map(db, pid)
        for order_id in {*old_drugs, *new_drugs}:
            if old_drugs.get(order_id) != new_drugs.get(order_id):
                self._relabel(order_id, new_drugs.get(order_id) or "unknown")
        tz_changed = course.timezone != self.tz_name
        self.tz_name = course.timezone
        if tz_changed or course.timezone is None:
            return  # a new calendar: apply() recomputes every day
        tz = zone(course.timezone)
        after = _segments(db, pid)
        old_set, new_set = set(before), set(after)
        gone = [s for s in before if s not in new_set]
        came = [s for s in after if s not in old_set]
        self.dirty |= days_touched([_piece(s) for s in gone], [], tz, old_horizon)
        self.dirty |= days_touched([_piece(s) for s in came], [], tz, horizon)

    def _relabel(self, order_id: str, drug: str) -> None:
        """The drug of an order changed (its order was entered in error, or written anew)."""
        db, pid = self.db, self.patient_id
        rows = db.execute("SELECT at_us FROM administrations WHERE patient_id = ? AND order_id = ?",
                          (pid, order_id)).fetchall()
        db.execute("UPDATE administrations SET drug = ? WHERE patient_id = ? AND order_id = ?", (drug, pid, order_id))
        if self.tz_name:
            tz = zone(self.tz_name)
            self.dirty |= {local_day(r[0], tz) for r in rows}

    def _horizon_moved(self, segments: list[tuple], old, new, tz) -> None:
        """Running infusions count up to the horizon: the days it moved over change."""
        if old is None or new is None or new <= old:
            return
        for s in segments:
            if s[5] is None:  # still running
                a = max(s[4], old)
                if new > a:
                    self.dirty.update(days_between(local_day(a, tz), local_day(new - 1, tz)))

    def _remove_administration(self, event_id: str, tz) -> None:
        row = self.db.execute("SELECT at_us FROM administrations WHERE patient_id = ? AND event_id = ?",
                              (self.patient_id, event_id)).fetchone()
        if row is None:
            return
        self.db.execute("DELETE FROM administrations WHERE patient_id = ? AND event_id = ?",
                        (self.patient_id, event_id))
        if tz is not None:
            self.dirty.add(local_day(row[0], tz))

    def _recompute_days(self, tz, horizon) -> None:
        if not self.dirty:
            return
        db, pid = self.db, self.patient_id
        days = sorted(self.dirty)
        doses = []
        for first, last in _runs(days):
            lo, hi = day_bounds(first, tz)[0], day_bounds(last, tz)[1]
            doses += db.execute("SELECT at_us, drug, route, amount_mg FROM administrations WHERE patient_id = ? "
                                "AND at_us >= ? AND at_us < ?", (pid, lo, hi)).fetchall()
        lo, hi = day_bounds(days[0], tz)[0], day_bounds(days[-1], tz)[1]
        pieces = [_piece(s) for s in _segments(db, pid) if s[4] < hi and (s[5] is None or s[5] > lo)]
        for part in chunks([d.isoformat() for d in days]):
            marks = ",".join("?" * len(part))
            db.execute(f"DELETE FROM daily_totals WHERE patient_id = ? AND date IN ({marks})", [pid, *part])
        sink = Sink(db)
        self.p._totals_rows(pid, tz, doses, pieces, horizon, self.dirty, sink)
        sink.flush()


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as runs of consecutive days: (first, last)."""
    runs: list[tuple[date, date]] = []
    for d in days:
        if runs and (d - runs[-1][1]).days == 1:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return runs


# --- rows ---------------------------------------------------------------------------------------


def structure_rows(course: Course, tz_name: str | None, sink: Sink) -> None:
    """A patient's structural rows from a Course (their old rows already deleted)."""
    from zoneinfo import ZoneInfo

    tz = zone(tz_name) if tz_name else ZoneInfo("UTC")
    pid = course.patient_id
    catalog = default_catalog()
    order_rows, change_rows = [], []
    orders = list(course.orders.values())
    voided = [o for oid, o in course.voided_orders.items() if oid not in course.orders]
    for o in orders + voided:
        final = o.state_at(2 ** 62)
        f = dosing_fields(final.dosing, catalog, None)
        if o in voided:
            status = "entered-in-error"
        elif o.end is not None:
            status = "stopped"
        else:
            status = "on-hold" if final.held else "active"
        last = final.last_change
        order_rows.append((
            pid, o.order_id, o.drug, final.route, o.form, status, iso(o.start, tz), o.start,
            iso(o.end, tz), o.end, o.ended_by, o.end_reason, f["dose"], f["unit"], f["frequency"],
            f["rate"], f["rate_unit"], 1 if f["as_needed"] else 0, o.indication, o.prescriber,
            iso(last.at, tz) if last else None, last.reason if last else None, o.event_id,
            orjson.dumps(o.dosing).decode(),
        ))
        for ch in o.changes:
            change_rows.append((pid, o.order_id, ch.kind, iso(ch.at, tz), ch.at,
                                orjson.dumps(ch.fields).decode(), ch.reason, ch.event_id))
    sink.add("orders", order_rows)
    sink.add("order_changes", change_rows)
    sink.add("rate_segments", [
        (pid, s.order_id, s.drug, s.route, s.source, iso(s.start, tz), s.start, iso(s.end, tz), s.end,
         s.rate, s.rate_unit, s.weight_kg, s.mg_per_h) for s in course.segments])
    listed_rows = []
    for x in course.listed:
        f = dosing_fields(x.dosing, catalog, None)
        listed_rows.append((pid, x.event_id, x.index, x.drug, x.route, x.dosing["form"], f["dose"], f["unit"],
                            f["frequency"], f["rate"], f["rate_unit"], 1 if f["as_needed"] else 0, x.order_id,
                            x.source, iso(x.start, tz), x.start, iso(x.end, tz), x.end, x.ended_by,
                            x.indication, x.note))
    sink.add("listed_medications", listed_rows)
    sink.add("transitions", [
        (pid, t.event_id, t.kind, iso(t.at, tz), t.at, orjson.dumps(t.active_orders_before).decode(),
         orjson.dumps(t.data).decode()) for t in course.transitions])
    sink.add("weights", [(pid, event_id, iso(t, tz), t, kg) for t, kg, event_id in course.weights])


def administration_rows(patient_id: str, items: Iterable[tuple]) -> list[tuple]:
    """items: (event_id, order_id, drug, route, kind, effective_at as charted, at_us, mg)."""
    return [(patient_id, *item) for item in items]


def _patient_row(db, patient_id: str) -> dict | None:
    row = db.execute("SELECT timezone, horizon_us, died_at_us FROM patients WHERE patient_id = ?",
                     (patient_id,)).fetchone()
    if row is None:
        return None
    return {"timezone": row[0], "horizon_us": row[1], "died_at_us": row[2]}


def patient_row(patient_id: str, tz_name: str | None, horizon: int | None, died: int | None) -> tuple:
    from zoneinfo import ZoneInfo

    tz = zone(tz_name) if tz_name else ZoneInfo("UTC")
    return (patient_id, tz_name, iso(horizon, tz), horizon, iso(died, tz), died)


def _segments(db, patient_id: str) -> list[tuple]:
    """(order_id, drug, route, source, start_us, end_us, rate, rate_unit, weight_kg, mg_per_h)."""
    return db.execute(
        "SELECT order_id, drug, route, source, start_us, end_us, rate, rate_unit, weight_kg, mg_per_h "
        "FROM rate_segments WHERE patient_id = ? ORDER BY rowid", (patient_id,)).fetchall()


def _piece(s: tuple) -> tuple:
    return (s[4], s[5], s[1], s[2], s[9])


def _drug_map(db, patient_id: str) -> dict[str, str]:
    return dict(db.execute("SELECT order_id, drug FROM orders WHERE patient_id = ?", (patient_id,)).fetchall())


def _is_administration(db, patient_id: str, event_id: str) -> bool:
    return db.execute("SELECT 1 FROM administrations WHERE patient_id = ? AND event_id = ?",
                      (patient_id, event_id)).fetchone() is not None


def _dose_mg(e: dict) -> float:
    return administration(0, 0, e, None).mg


def _all_days(db, patient_id: str, tz, horizon) -> set[date]:
    doses = [(r[0], None, None, None) for r in db.execute(
        "SELECT at_us FROM administrations WHERE patient_id = ?", (patient_id,)).fetchall()]
    return days_touched([_piece(s) for s in _segments(db, patient_id)], doses, tz, horizon)


# --- schema -----------------------------------------------------------------------------------


def create_indexes(db: sqlite_utils.Database) -> None:
    """Secondary indexes, made after a bulk load (sorting once beats growing them row by row)."""
    db["rate_segments"].create_index(["patient_id", "start_us"], if_not_exists=True)
    db["administrations"].create_index(["patient_id", "event_id"], unique=True, if_not_exists=True)
    db["administrations"].create_index(["patient_id", "at_us"], if_not_exists=True)


def create_tables(db: sqlite_utils.Database) -> None:
    db["patients"].create({"patient_id": str, "timezone": str, "horizon": str, "horizon_us": int,
                           "died_at": str, "died_at_us": int}, pk="patient_id")
    db["orders"].create({
        "patient_id": str, "order_id": str, "drug": str, "route": str, "form": str, "status": str,
        "started_at": str, "started_us": int, "ended_at": str, "ended_us": int, "ended_by": str,
        "end_reason": str, "dose": float, "unit": str, "frequency": str, "rate": float, "rate_unit": str,
        "as_needed": int, "indication": str, "prescriber": str, "last_change_at": str,
        "last_change_reason": str, "event_id": str, "dosing": str,
    }, pk=("patient_id", "order_id"))
    db["order_changes"].create({
        "patient_id": str, "order_id": str, "kind": str, "at": str, "at_us": int, "changed": str,
        "reason": str, "event_id": str}, pk=("patient_id", "event_id"))
    db["rate_segments"].create({
        "patient_id": str, "order_id": str, "drug": str, "route": str, "source": str, "start": str,
        "start_us": int, "end": str, "end_us": int, "rate": float, "rate_unit": str, "weight_kg": float,
        "mg_per_h": float})
    db["administrations"].create({
        "patient_id": str, "event_id": str, "order_id": str, "drug": str, "route": str, "kind": str,
        "at": str, "at_us": int, "amount_mg": float})
    db["listed_medications"].create({
        "patient_id": str, "event_id": str, "line": int, "drug": str, "route": str, "form": str,
        "dose": float, "unit": str, "frequency": str, "rate": float, "rate_unit": str, "as_needed": int,
        "order_id": str, "source": str, "started_at": str, "started_us": int, "ended_at": str,
        "ended_us": int, "ended_by": str, "indication": str, "note": str}, pk=("patient_id", "event_id", "line"))
    db["transitions"].create({
        "patient_id": str, "event_id": str, "kind": str, "at": str, "at_us": int,
        "active_orders_before": str, "data": str}, pk=("patient_id", "event_id"))
    db["weights"].create({"patient_id": str, "event_id": str, "at": str, "at_us": int, "kg": float},
                         pk=("patient_id", "event_id"))
    db["daily_totals"].create({
        "patient_id": str, "date": str, "drug": str, "route": str, "amount_mg": float, "opioid": int,
        "mme": float, "mme_table": str}, pk=("patient_id", "date", "drug", "route"))
    db.execute("CREATE VIEW daily_mme AS SELECT patient_id, date, mme_table, SUM(mme) AS mme, "
               "SUM(CASE WHEN opioid = 1 AND mme IS NULL THEN 1 ELSE 0 END) AS opioids_without_factor "
               "FROM daily_totals WHERE opioid = 1 GROUP BY patient_id, date, mme_table")
