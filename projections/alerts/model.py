"""What every rule works with: the alert itself, and the context a rule reads (one patient).

An alert's id is a digest of its rule, its patient and the ids of the events (or the local
day) that define it, so the same record always gives the same ids: an acknowledgement
(an `alert_acknowledged` event naming the id) still finds its alert after a rebuild.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from mar.catalog import Catalog
from mar.history import describe_dosing

from ..course import Course, Listed, Order
from ..mme import MmeTable
from ..timeline import iso, to_datetime
from .config import RuleSettings

# The id prefix a person sees; the digest after it makes the id unique and stable.
PREFIX = {
    "unreconciled_stop": "omission",
    "admission_discrepancy": "admission",
    "mme_threshold": "mme",
    "mme_rise": "mme-rise",
    "opioid_benzodiazepine": "opioid-benzo",
    "duplicate_opioid": "dup-opioid",
    "adjuvant_taper": "taper",
    "weight_missing": "weight",
    "as_needed_too_soon": "prn-early",
    "as_needed_daily_max": "prn-max",
    "pca_limit": "pca-limit",
}


def alert_id(rule: str, patient_id: str, keys: tuple) -> str:
    text = "\x1f".join([rule, patient_id, *map(str, keys)])
    return f"{PREFIX[rule]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@dataclass
class Alert:
    id: str
    patient_id: str
    rule: str
    severity: str
    drug: str
    at: int  # clinical time, epoch microseconds
    message: str
    evidence: list[str]
    status: str = "open"
    acknowledged: dict | None = None  # {"by", "at", "reason", "event_id"} once acknowledged

    def to_json(self, tz: ZoneInfo) -> dict:
        return {"id": self.id, "patient_id": self.patient_id, "rule": self.rule, "severity": self.severity,
                "drug": self.drug, "at": iso(self.at, tz), "message": self.message,
                "evidence": list(self.evidence), "status": self.status, "acknowledged": self.acknowledged}


@dataclass
class Context:
    """One patient's record as the rules read it (everything already filtered by --known-at/--at)."""

    course: Course
    events: list[tuple[int, int, dict]]  # (clinical time, store order, stored event), in clinical order
    tz: ZoneInfo
    catalog: Catalog
    mme_table: MmeTable
    settings: RuleSettings
    until: int  # the clinical time the record is read up to: running infusions count to here
    _cache: dict = field(default_factory=dict)

    @property
    def patient_id(self) -> str:
        return self.course.patient_id

    def alert(self, rule: str, keys: tuple, drug: str, at: int, message: str, evidence,
              severity: str | None = None) -> Alert:
        sev = severity or self.settings.rule(rule)["severity"]
        return Alert(alert_id(rule, self.patient_id, keys), self.patient_id, rule, sev, drug, at, message,
                     _unique(evidence))

    def local(self, at: int) -> str:
        """A clinical time as a nurse reads it: local date and clock time."""
        return to_datetime(at, self.tz).strftime("%Y-%m-%d %H:%M")

    def is_opioid(self, drug: str) -> bool:
        d = self.catalog.drug(drug)
        return d is not None and d.is_opioid

    def in_class(self, drug: str, classes) -> bool:
        d = self.catalog.drug(drug)
        return d is not None and any(d.is_a(c) for c in classes)

    def by_type(self, kind: str) -> list[tuple[int, dict]]:
        """(clinical time, event) of one type that count (not entered in error), in clinical order."""
        key = ("type", kind)
        if key not in self._cache:
            voided = self.course.voided
            self._cache[key] = [(t, e) for t, _, e in self.events
                                if e["type"] == kind and e["event_id"] not in voided]
        return self._cache[key]


def _unique(ids) -> list[str]:
    seen, out = set(), []
    for i in ids:
        if i and i not in seen:
            seen.add(i)
            out.append(i)
    return out


def order_label(order: Order, at: int) -> str:
    """`memantine po 10 mg bid (order memantine-po-1)` as the order stood at `at`."""
    state = order.state_at(min(at, order.end - 1) if order.end is not None else at)
    return f"{order.drug} {state.route} {describe_dosing(state.dosing)} (order {order.order_id})"


def listed_label(x: Listed) -> str:
    return f"{x.drug} {x.route} {describe_dosing(x.dosing)} (on the {x.source})"


def dosing_label(drug: str, route: str, dosing: dict) -> str:
    return f"{drug} {route} {describe_dosing(dosing)}"
