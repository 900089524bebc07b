"""A proposed medication list from a FHIR Bundle (R4B or R5), for `mar reconcile --list FILE`.

    medication_list_from_bundle(path_or_dict) -> [ListedMedication as JSON, ...]
    read_medication_list(path_or_dict) -> MedicationList(lines, stopped, version)

The Bundle holds MedicationStatement and/or MedicationRequest resources (what mar's own FHIR
handoff Bundle holds, so its list reads back unchanged). A line is current when the
statement is active or intended (R4B) or recorded and taken (R5 adherence absent or
taking), or the request is active or draft. Stopped, completed, ended and cancelled
resources, and MedicationStatements not taken, are returned apart as `stopped` (with their
reason) for reconciliation; entered-in-error resources are not on the list. On-hold and
unknown are refused: a list line has no hold status, and an unknown one is a guess.

Each line: drug, route, dosing (as in mar events), indication (reason), note (resource
notes and dosage instructions such as "with food"; Dosage.text renders the structured
dosage and is not copied), order_id (a `derivedFrom`/`basedOn` reference to the inpatient
MedicationRequest, or an identifier in `urn:mar:order`). Times are not part of a list line
and are not read. A List resource in the Bundle gives the order of the lines. Problems name
the resource and FHIR path; any problem raises InvalidEvents and no list is returned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path as FilePath

from pydantic import ValidationError

from .catalog import Catalog, default_catalog
from .chart import Chart
from .checks import Checker
from .events import ListedMedication
from .fhir_bundle import (
    MAR_ORDER_SYSTEM,
    Entry,
    FhirBundle,
    FhirProblems,
    check_entries,
    concept_text,
    modifier_extensions,
    read_bundle,
    unknown_elements,
)
from .fhir_dosage import DosageFacts, Reader
from .fhir_in import REQUEST_ELEMENTS, STATEMENT_ELEMENTS, TAKING

LIST_TYPES = ("MedicationStatement", "MedicationRequest")
CONTEXT_TYPES = ("List", "DetectedIssue", "Patient", "Medication", "Practitioner", "PractitionerRole",
                 "Organization")
STOPPED_ADHERENCE = ("stopped", "stopped-as-directed", "stopped-not-as-directed", "not-taking")


@dataclass
class ListItem:
    """One medication of the list as read, before it becomes a ListedMedication."""

    entry: Entry
    drug: str | None
    facts: DosageFacts | None
    indication: str | None
    note: str | None
    order_id: str | None
    current: bool
    reason: str | None = None


@dataclass
class MedicationList:
    lines: list[dict]
    stopped: list[dict] = field(default_factory=list)  # {"drug", "reason", "source"}
    version: str = "R5"


def medication_list_from_bundle(source: "str | FilePath | dict", version: str | None = None,
                                catalog: Catalog | None = None) -> list[dict]:
    """The current lines of a FHIR medication list, as ListedMedication JSON dicts."""
    return read_medication_list(source, version, catalog).lines


def read_medication_list(source: "str | FilePath | dict", version: str | None = None,
                         catalog: Catalog | None = None) -> MedicationList:
    bundle = read_bundle(source, version)
    catalog = catalog or default_catalog()
    problems = FhirProblems(bundle.source)
    items = list_items(bundle, Reader(bundle, catalog, problems), problems)
    read = Reader(bundle, catalog, problems)
    lines = [_line(item, read, catalog, problems) for item in items if item.current]
    problems.raise_if_any()
    stopped = [{"drug": i.drug, "reason": i.reason, "source": str(i.entry.path)} for i in items if not i.current]
    return MedicationList(lines, stopped, bundle.version)


def list_items(bundle: FhirBundle, read: Reader, problems: FhirProblems) -> list[ListItem]:
    """Every MedicationStatement/MedicationRequest of the Bundle that belongs to the list, in
    the order of its List resource (if any), then Bundle order."""
    items = []
    check_entries(bundle, problems)
    for entry in _ordered(bundle, problems):
        if entry.type in CONTEXT_TYPES:
            continue
        if entry.type not in LIST_TYPES:
            problems.add(entry.path, entry.type, "a medication list holds MedicationStatement or "
                         f"MedicationRequest resources (accepted as context: {', '.join(CONTEXT_TYPES)})")
            continue
        modifier_extensions(entry.resource, entry.path, problems)
        item = _item(entry, read, problems)
        if item is not None:
            items.append(item)
    return items


def _ordered(bundle: FhirBundle, problems: FhirProblems) -> list[Entry]:
    lists = list(bundle.of_type("List"))
    if len(lists) > 1:
        problems.add(lists[1].path, None, "more than one List: which one is the medication list?")
    if not lists:
        return bundle.entries
    first: list[Entry] = []
    for i, e in enumerate(lists[0].resource.get("entry") or ()):
        ref = (e.get("item") or {}).get("reference") or ""
        target = bundle.resolve(ref, lists[0]) if ref else None
        hit = next((x for x in bundle.entries if target and x.resource is target[0]), None)
        if hit is None:
            problems.add(f"{lists[0].path}.entry[{i}].item", ref, "the List names a resource not in the Bundle")
        elif hit not in first:
            first.append(hit)
    return first + [e for e in bundle.entries if e not in first]


def _item(entry: Entry, read: Reader, problems: FhirProblems) -> ListItem | None:
    r, p = entry.resource, entry.path
    statement = entry.type == "MedicationStatement"
    unknown_elements(r, p, STATEMENT_ELEMENTS if statement else REQUEST_ELEMENTS, problems, entry.type)
    state = _state(entry, read.r5, problems)
    if state is None:
        return None
    drug = read.medication(entry)
    dosages = r.get("dosage" if statement else "dosageInstruction") or []
    facts = None
    if state == "current":
        facts = read.single_dosage(dosages, p / ("dosage" if statement else "dosageInstruction"))
    notes = [n.get("text") for n in r.get("note") or () if n.get("text")] + (facts.notes if facts else [])
    return ListItem(entry, drug.name if drug else None, facts, _reasons(r, read.r5), "; ".join(notes) or None,
                    _order_id(r, statement), state == "current", _status_reason(r, read.r5))


def _state(entry: Entry, r5: bool, problems: FhirProblems) -> str | None:
    """current, stopped, or None (entered in error: not on the list; or a problem)."""
    r, p = entry.resource, entry.path
    status = r.get("status")
    if status == "entered-in-error":
        return None
    if entry.type == "MedicationRequest":
        table = {"active": "current", "draft": "current", "stopped": "stopped", "cancelled": "stopped",
                 "completed": "stopped", "ended": "stopped"}
    elif r5:
        adherence = (((r.get("adherence") or {}).get("code") or {}).get("coding") or [{}])[0].get("code")
        if status == "recorded" and adherence in (None,) + TAKING:
            return "current"
        if status == "recorded" and adherence in STOPPED_ADHERENCE:
            return "stopped"
        problems.add(p / ("adherence" if status == "recorded" else "status"), adherence or status,
                     "a list line is taken (adherence taking) or stopped; on hold, draft or unknown "
                     "is not one")
        return None
    else:
        table = {"active": "current", "intended": "current", "stopped": "stopped", "completed": "stopped",
                 "not-taken": "stopped"}
    if status not in table:
        problems.add(p / "status", status, f"a list line is one of {', '.join(table)} (or entered-in-error); "
                     "mar has no list line on hold or of unknown status")
        return None
    return table[status]


def _reasons(r: dict, r5: bool) -> str | None:
    if r5:
        texts = [concept_text(x.get("concept")) or (x.get("reference") or {}).get("display")
                 for x in r.get("reason") or ()]
    else:
        texts = [concept_text(c) for c in r.get("reasonCode") or ()]
        texts += [x.get("display") or x.get("reference") for x in r.get("reasonReference") or ()]
    return "; ".join(t for t in texts if t) or None


def _status_reason(r: dict, r5: bool) -> str | None:
    if r5 and r.get("adherence"):
        return concept_text((r["adherence"] or {}).get("reason"))
    value = r.get("statusReason")
    items = value if isinstance(value, list) else [value] if value else []
    return "; ".join(t for t in (concept_text(c) for c in items) if t) or None


def _order_id(r: dict, statement: bool) -> str | None:
    refs = (r.get("derivedFrom") or []) + (r.get("basedOn") or []) if statement else (r.get("basedOn") or [])
    for ref in refs:
        ident = ref.get("identifier") or {}
        if ident.get("system") == MAR_ORDER_SYSTEM and ident.get("value"):
            return ident["value"]
        text = ref.get("reference") or ""
        if text.startswith("MedicationRequest/"):
            return text.split("/", 1)[1]
    return None


def _line(item: ListItem, read: Reader, catalog: Catalog, problems: FhirProblems) -> dict | None:
    if item.facts is None:
        return None
    route = item.facts.route
    if route is None and not read.problems_at(item.facts.path / "route"):
        problems.add(item.facts.path / "route", None, "no route; mar needs it for every list line")
    dosing = read.dosing(item.facts)
    if not (item.drug and route and dosing):
        return None
    raw = {"drug": item.drug, "route": route, "dosing": dosing, "indication": item.indication,
           "order_id": item.order_id, "note": item.note}
    try:
        line = ListedMedication.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        for err in exc.errors():
            problems.add(f"{item.entry.path} -> {'.'.join(map(str, err['loc']))}", err.get("input"),
                         err["msg"].removeprefix("Value error, "))
        return None
    data = line.model_dump(mode="json", exclude_none=True)
    _catalog_checks(data, item, catalog, problems)
    return data


def _catalog_checks(line: dict, item: ListItem, catalog: Catalog, problems: FhirProblems) -> None:
    """The catalog checks an event would get (route of the drug, frequency, plausible dose)."""
    check = Checker(catalog, datetime.now(timezone.utc), None)
    drug = check.drug("drug", line["drug"])
    check.route("route", line["route"], drug)
    dosing = line["dosing"]
    if dosing["form"] in ("scheduled", "as_needed"):
        check.dose("dosing.dose", dosing["dose"], drug)
        check.frequency("dosing.frequency", dosing["frequency"], dosing["form"] == "as_needed")
    elif dosing["form"] == "infusion" and not dosing["rate"]["unit"].count("/kg"):
        check.rate("dosing.rate", dosing["rate"], drug, Chart("list"), datetime.now(timezone.utc))
    elif dosing["form"] == "pca":
        check.dose("dosing.demand_dose", dosing["demand_dose"], drug)
        basal = dosing.get("basal_rate")
        if basal and not basal["unit"].count("/kg"):
            check.rate("dosing.basal_rate", basal, drug, Chart("list"), datetime.now(timezone.utc))
    for p in check.problems:
        problems.add(f"{item.entry.path} -> {p.field}", p.value, p.message)
