"""One patient's record for the transition commands, and proposed lists read from files.

The transition commands read one patient's stream straight from the store and fold it
(`projections.course`): a few thousand events fold in milliseconds, and the answer never
waits for the read-model database to catch up.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from mar.catalog import Catalog, default_catalog
from mar.chart import Chart
from mar.checks import Checker
from mar.errors import MarError, Problem, UnknownPatient
from projections.course import Course, build_course
from projections.timeline import instant, parse_time, zone

UTC_ZONE = ZoneInfo("UTC")


class BadTime(MarError):
    """A time given on the command line that cannot be read."""


class InvalidList(MarError):
    """A proposed list with problems; each names the line, field and value."""

    def __init__(self, problems: list[Problem], source: str):
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        count = len(problems)
        super().__init__(f"{source}: {count} problem{'s' if count != 1 else ''} in the list:\n{lines}")


@dataclass
class PatientRecord:
    patient_id: str
    events: list[dict]
    course: Course
    tz: ZoneInfo
    by_id: dict[str, dict] = field(default_factory=dict)
    _chart: Chart | None = None

    @property
    def chart(self) -> Chart:
        """The write side's chart (weights for a proposed list's checks), built when asked."""
        if self._chart is None:
            self._chart = Chart(self.patient_id)
            for e in self.events:
                self._chart.apply(e)
        return self._chart

    def time(self, text: str | None) -> int | None:
        """A user's time: ISO 8601, with a UTC offset or in the patient's own time zone."""
        if text is None:
            return None
        try:
            return parse_time(text, self.tz)
        except ValueError:
            raise BadTime(f"--at={text!r}: not an ISO 8601 time (for example 2007-12-03T11:00:00-08:00, "
                          "or without an offset in the patient's time zone)") from None

    def now(self) -> int:
        return instant(datetime.now(timezone.utc).replace(microsecond=0).isoformat())


def load_patient(store, patient_id: str) -> PatientRecord:
    records = store.stream(patient_id)
    if not records:
        raise UnknownPatient(patient_id)
    return record_of([r.data for r in records], patient_id)


def record_of(events: list[dict], patient_id: str) -> PatientRecord:
    course = build_course(events, patient_id=patient_id)
    tz = zone(course.timezone) if course.timezone else UTC_ZONE
    return PatientRecord(patient_id, events, course, tz, {e["event_id"]: e for e in events})


# --- proposed lists -------------------------------------------------------------------------


@dataclass
class ProposedList:
    lines: list[dict]
    decisions: list[dict]
    label: str  # proposed list, FHIR R5 Bundle ...


def read_list(path: str | Path, chart: Chart | None = None, catalog: Catalog | None = None) -> ProposedList:
    """A proposed list: mar JSON (a list of ListedMedication, or {"medication_list": [...],
    "decisions": [...]}) or a FHIR Bundle of MedicationStatement / MedicationRequest."""
    catalog = catalog or default_catalog()
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise MarError(f"cannot read the list {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise MarError(f"{path}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if isinstance(data, dict) and data.get("resourceType") == "Bundle":
        return _fhir_list(data, path, catalog)
    if isinstance(data, dict) and "medication_list" in data:
        lines, decisions = data["medication_list"], data.get("decisions") or []
    elif isinstance(data, list):
        lines, decisions = data, []
    else:
        raise MarError(f"{path}: a list is a JSON array of medication lines, an object with "
                       "'medication_list' (and 'decisions'), or a FHIR Bundle")
    return ProposedList(_lines(lines, path, chart, catalog), _decisions(decisions, path), "proposed list")


def _fhir_list(data: dict, path, catalog: Catalog) -> ProposedList:
    from mar.fhir_lists import read_medication_list

    found = read_medication_list(data, catalog=catalog)
    decisions = [{"drug": s["drug"], "action": "stop",
                  "reason": s.get("reason") or f"marked stopped on the list ({s['source']})"}
                 for s in found.stopped if s.get("drug")]
    return ProposedList(found.lines, decisions, f"proposed list (FHIR {found.version} Bundle)")


def _lines(raw: list, path, chart: Chart | None, catalog: Catalog) -> list[dict]:
    from pydantic import ValidationError

    from mar.events import ListedMedication  # pydantic models: loaded only for a proposed list

    problems: list[Problem] = []
    out = []
    check = Checker(catalog, datetime.now(timezone.utc), None)
    for i, item in enumerate(raw):
        try:
            line = ListedMedication.model_validate(item).model_dump(mode="json", exclude_none=True)
        except ValidationError as exc:
            problems += [_problem(f"[{i}].", err) for err in exc.errors()]
            continue
        check.medication(f"[{i}].", line, chart or Chart("list"), datetime.now(timezone.utc))
        out.append(line)
    problems += check.problems
    if problems:
        raise InvalidList(problems, str(path))
    return out


def _decisions(raw: list, path) -> list[dict]:
    from pydantic import ValidationError

    from mar.events import Decision

    problems: list[Problem] = []
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(Decision.model_validate(item).model_dump(mode="json", exclude_none=True))
        except ValidationError as exc:
            problems += [_problem(f"decisions[{i}].", err) for err in exc.errors()]
    if problems:
        raise InvalidList(problems, str(path))
    return out


def _problem(prefix: str, err: dict) -> Problem:
    value = None if err["type"] == "missing" else err.get("input")  # a missing field has no value
    return Problem(None, prefix + ".".join(map(str, err["loc"])), value, err["msg"].removeprefix("Value error, "))
