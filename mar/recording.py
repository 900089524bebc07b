"""Writing events: validate a batch all-or-nothing, skip what is already stored, append.

This is the one write path: `mar import`, `mar record` and the FHIR import all end here.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

import orjson
from pydantic import ValidationError

from .catalog import Catalog, default_catalog
from .chart import Chart
from .collector import collector_paused
from .checks import check_event
from .clinical_time import UTC
from .errors import ConcurrencyConflict, InvalidEvents, Problem, WriteRefused
from .event_types import VERSIONS
from .events import BY_TYPE, EVENT_ADAPTER
from .store import CONFLICTS, SNAPSHOT_INTERVAL, EventStore, retrying, stream_id


@dataclass
class Summary:
    added: int = 0
    already_stored: int = 0
    patients: set[str] = field(default_factory=set)
    by_type: dict[str, int] = field(default_factory=dict)


@dataclass
class Candidate:
    line: int | None
    data: dict  # the event as given, validated, in JSON form
    event_id: str
    digest: str


# Fields the store adds (and `mar export` writes) beside the source's event; see mar.export.
STORE_FIELDS = frozenset({"event_id", "stored_at", "stored_by", "v", "version", "digest", "chain"})


def digest_of(data: dict) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def parse_line(text: str | bytes | dict, line: int | None) -> tuple[Candidate | None, list[Problem]]:
    """Shape, type and unit validation of one input event."""
    try:
        raw = orjson.loads(text) if isinstance(text, (str, bytes)) else text
    except orjson.JSONDecodeError as exc:
        return None, [Problem(line, "(line)", _clip(text), f"not valid JSON: {exc}")]
    if not isinstance(raw, dict):
        return None, [Problem(line, "(line)", _clip(text), "an event must be a JSON object")]
    if not STORE_FIELDS.isdisjoint(raw):
        from .export import parse_exported  # a line of `mar export`: keeps its event id

        return parse_exported(raw, line)
    kind = raw.get("type")
    if kind not in BY_TYPE:
        return None, [Problem(line, "type", kind, f"unknown event type; known: {', '.join(BY_TYPE)}")]
    cls = BY_TYPE[kind]
    try:
        # The type's own validator and serializer: what the discriminated union and
        # model_dump run, without their dispatch (about a microsecond an event).
        event = cls.__pydantic_validator__.validate_python(raw)
    except ValidationError:
        try:  # again through the union, for its error locations
            EVENT_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            return None, [_problem(line, err) for err in exc.errors()]
        raise
    data = cls.__pydantic_serializer__.to_python(event, mode="json", exclude_none=True, exclude_defaults=True)
    data["type"] = kind
    digest = digest_of(data)
    event_id = data.get("idempotency_key") or f"sha256:{digest[:32]}"
    return Candidate(line, data, event_id, digest), []


DOSING_FORMS = ("scheduled", "as_needed", "infusion", "pca")


def _path(loc: tuple) -> str:
    """A field path as a clinician reads it: medication_list[0].dosing.dose.value."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and loc[i - 1] == "dosing" and part in DOSING_FORMS:
            continue  # pydantic's union tag, not a field the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out


def _problem(line: int | None, err: dict) -> Problem:
    path = _path(err["loc"][1:]) or "(event)"  # [1:] drops the event-type tag
    message = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    kind = err["type"]
    if kind == "missing":
        return Problem(line, path, None, "required field is missing")
    if kind in ("timezone_aware", "datetime_from_date_parsing", "datetime_parsing", "datetime_type"):
        return Problem(line, path, err.get("input"), "not an ISO 8601 time with a UTC offset "
                       "(for example 2007-10-15T14:00:00-07:00); naive times are refused")
    if kind == "extra_forbidden":
        return Problem(line, path, err["input"], "unknown field (not part of this event type)")
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        value = err["input"].get("form") if isinstance(err["input"], dict) else None
        what = "required field is missing" if value is None else "unknown dosing form"
        return Problem(line, f"{path}.form", value, f"{what}; use one of {', '.join(DOSING_FORMS)}")
    if kind == "model_type" and path.rsplit(".", 1)[-1] in _QUANTITIES:
        return Problem(line, path, err.get("input"), "an amount needs its unit: "
                       'an object such as {"value": 10, "unit": "mg"}')
    if kind == "string_too_short" and err.get("ctx", {}).get("min_length") == 1:
        return Problem(line, path, err.get("input"), "must not be empty")
    if kind == "string_pattern_mismatch" and path == "patient_id":
        return Problem(line, path, err.get("input"), "may contain only letters, digits and . _ : -")
    return Problem(line, path, err.get("input"), message)


_QUANTITIES = ("dose", "rate", "weight", "max_daily", "demand_dose", "basal_rate", "limit")


def _clip(text) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    s = (text if isinstance(text, str) else repr(text)).strip()
    return s if len(s) <= 80 else s[:77] + "..."


class Recorder:
    """Validates and appends batches of events for one store."""

    def __init__(self, store: EventStore, user: str | None, catalog: Catalog | None = None,
                 clock: Callable[[], datetime] | None = None):
        if not user:
            raise WriteRefused("who is writing? give --user or set MAR_USER; nothing was written")
        self.store = store
        self.user = user
        self.catalog = catalog or default_catalog()
        self.clock = clock or (lambda: datetime.now(UTC))

    def record(self, lines: Iterable[tuple[int | None, str | bytes | dict]], source: str | None = None,
               progress: Callable[[int], None] | None = None) -> Summary:
        with collector_paused():
            candidates, problems = [], []
            for n, (line, text) in enumerate(lines, 1):
                cand, errs = parse_line(text, line)
                problems += errs
                if cand is not None:
                    candidates.append(cand)
                if progress and n % 1000 == 0:
                    progress(1000)
            for attempt in retrying():
                try:
                    return self._write(candidates, source, problems)
                except CONFLICTS:
                    continue
        raise ConcurrencyConflict(
            "other writers kept changing the same patients; gave up after 6 attempts. "
            "Nothing of this write was stored: run it again."
        )

    def _write(self, candidates: list[Candidate], source: str | None,
               shape_problems: list[Problem]) -> Summary:
        now = self.clock()
        stamp = now.isoformat()
        summary = Summary()
        rows, keys = [], []  # stored rows, encoded as each event passes its checks
        problems = list(shape_problems)
        charts: dict[str, Chart] = {}
        starts: dict[str, int] = {}  # patient -> version of its first event in this write
        by_patient: dict[str, list[Candidate]] = {}
        for cand in candidates:
            by_patient.setdefault(cand.data["patient_id"], []).append(cand)
        # Many patients: one query finds the new ones, which have nothing to load or match.
        existing = self.store.patients_with_events(list(by_patient)) if len(by_patient) > 1 else None
        encode = self.store.mapper.encode
        for patient_id, cands in by_patient.items():
            sid = stream_id(patient_id)
            if existing is not None and patient_id not in existing:
                chart, stored = Chart(patient_id), {}
            else:
                chart = self.store.load_chart(patient_id)
                stored = self.store.known_ids(patient_id, [c.event_id for c in cands])
            charts[patient_id] = chart
            start = chart.version + 1
            batch: dict[str, Candidate] = {}
            target_type = lambda eid: self._target_type(patient_id, eid, batch)  # noqa: E731
            for cand in cands:
                if cand.event_id in batch or cand.event_id in stored:
                    prior = self._prior_digest(cand.event_id, batch, stored)
                    if prior != cand.digest:
                        problems.append(Problem(cand.line, "idempotency_key", cand.event_id,
                                                "already used for an event with different content"))
                    else:
                        summary.already_stored += 1
                    continue
                errs = check_event(cand.data, chart, self.catalog, now, cand.line, target_type)
                if errs:
                    problems += errs
                    continue
                batch[cand.event_id] = cand
                data = self._stored_form(cand, stamp)
                chart.apply(data)
                rows.append(encode(sid, chart.version, data))
                keys.append((cand.event_id, cand.digest))
                summary.by_type[data["type"]] = summary.by_type.get(data["type"], 0) + 1
            if len(batch):
                summary.patients.add(patient_id)
                starts[patient_id] = start
        if problems:
            problems.sort(key=lambda p: (p.line is None, p.line or 0))
            raise InvalidEvents(problems, source)
        if rows:
            self.store.append_stored(rows, keys)
        self.store.remember_charts(charts.values())
        summary.added = len(rows)
        self._snapshot(charts, starts)
        return summary

    @staticmethod
    def _prior_digest(event_id: str, batch: dict[str, Candidate], stored: dict) -> str | None:
        if event_id in batch:
            return batch[event_id].digest
        if event_id in stored:
            return stored[event_id][0]
        return None

    def _stored_form(self, cand: Candidate, stamp: str) -> dict:
        data = dict(cand.data)
        data["event_id"] = cand.event_id
        data.setdefault("recorded_at", stamp)
        data.setdefault("recorded_by", self.user)
        data["stored_at"] = stamp
        data["stored_by"] = self.user
        data["v"] = VERSIONS[data["type"]]
        return data

    def _target_type(self, patient_id: str, event_id: str, batch: dict[str, Candidate]) -> str | None:
        if event_id in batch:
            return batch[event_id].data["type"]
        return self.store.event_type(patient_id, event_id)

    def _snapshot(self, charts: dict[str, Chart], starts: dict[str, int]) -> None:
        """Snapshot charts whose stream crossed a multiple of the interval (a cache only)."""
        due = [charts[patient_id] for patient_id, start in starts.items()
               if charts[patient_id].version // SNAPSHOT_INTERVAL > (start - 1) // SNAPSHOT_INTERVAL]
        if due:  # one transaction (one fsync) for all the patients of a large import
            self.store.save_snapshots(due)
