"""Medication reconciliation at transitions of care.

    record = load_patient(store, "ref-001")
    result = reconcile(record, kind="discharge", at=record.time("2007-12-03T11:00:00-08:00"))
    result.to_json(); result.to_text(); result.reconciled

`lists` decides which two lists a transition compares, `compare` pairs and classifies
their lines, `items` puts every kind of list line into one comparable shape. See
docs/reconciliation.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from mar.catalog import Catalog, default_catalog
from projections.timeline import iso, to_datetime

from .compare import STATUSES, Line, compare
from .items import Item, describe
from .lists import KINDS, NoTransition, Sides, apply_missing, find_transition, proposed_sides, sides_of
from .source import BadTime, PatientRecord, ProposedList, load_patient, read_list, record_of

__all__ = ["reconcile", "reconcile_patient", "Reconciliation", "Line", "Item", "load_patient", "record_of", "read_list",
           "PatientRecord", "ProposedList", "NoTransition", "BadTime", "KINDS", "STATUSES",
           "EXIT_UNRECONCILED"]

# Exit status of `mar reconcile` when an omission or undocumented change remains.
EXIT_UNRECONCILED = 3


@dataclass
class Reconciliation:
    patient_id: str
    tz: ZoneInfo
    sides: Sides
    lines: list[Line]
    proposed: bool
    catalog: Catalog

    @property
    def kind(self) -> str:
        return self.sides.kind

    @property
    def at(self) -> int:
        return self.sides.at

    @property
    def unreconciled(self) -> list[Line]:
        return [x for x in self.lines if not x.reconciled]

    @property
    def reconciled(self) -> bool:
        return not self.unreconciled

    def to_json(self) -> dict:
        t = self.sides.transition
        out = {"patient_id": self.patient_id, "transition": self.kind, "at": iso(self.at, self.tz),
               "lines": [self._line_json(x) for x in self.lines]}
        out.update(
            reconciled=self.reconciled,
            unreconciled=len(self.unreconciled),
            compared={"before": self.sides.before_label, "after": self.sides.after_label},
            proposed=self.proposed,
            event_id=t.event_id if t else None,
        )
        if t is not None:
            out["where"] = where(t.data)
        return out

    def _line_json(self, x: Line) -> dict:
        out = {"drug": x.drug, "status": x.status, "before": describe(x.before, self.catalog),
               "after": describe(x.after, self.catalog), "reason": x.reason,
               "discrepancy": list(x.discrepancy), "documentation": x.documentation,
               "reconciled": x.reconciled, "notes": list(x.notes)}
        if x.decisions:
            out["decisions"] = [dict(d) for d in x.decisions]
        if x.missing_since is not None:
            out["missing_since"] = iso(x.missing_since, self.tz)
            out["missing_before"] = describe(x.missing_item, self.catalog)
        return out

    def to_text(self) -> str:
        from .text import reconciliation_text

        return reconciliation_text(self)

    def local(self, us: int, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
        return to_datetime(us, self.tz).strftime(fmt)


def where(data: dict) -> str | None:
    """Where the transition sends or brings the patient."""
    return data.get("destination") or data.get("to_location") or data.get("location")


def reconcile(record: PatientRecord, kind: str | None = None, at: int | None = None,
              proposed: ProposedList | None = None, catalog: Catalog | None = None) -> Reconciliation:
    """Compare the two lists of a transition (or a proposed list with what is active at `at`)."""
    catalog = catalog or default_catalog()
    if kind is not None and kind not in KINDS:
        raise NoTransition(f"--transition={kind!r}: use one of {', '.join(KINDS)}")
    course = record.course
    if proposed is not None:
        when = at if at is not None else record.now()
        sides = proposed_sides(course, proposed.lines, proposed.decisions, when, kind or "discharge",
                               proposed.label)
    else:
        sides = sides_of(course, find_transition(course, kind, at), catalog)
    lines = compare(sides.before, sides.after, sides.decisions, catalog,
                    after_are_orders=sides.after_are_orders, recent_stops=sides.recent_stops)
    apply_missing(lines, sides)
    lines.sort(key=lambda x: (x.reconciled, x.drug, STATUSES.index(x.status)))
    return Reconciliation(record.patient_id, record.tz, sides, lines, proposed is not None, catalog)


def reconcile_patient(store, patient_id: str, kind: str | None = None, at: str | None = None,
                      list_path: str | None = None) -> Reconciliation:
    """What `mar reconcile` runs: read the patient (and the proposed list), reconcile."""
    record = load_patient(store, patient_id)
    proposed = read_list(list_path, record.chart) if list_path else None
    return reconcile(record, kind, record.time(at), proposed)
