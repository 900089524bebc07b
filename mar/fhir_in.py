"""FHIR import: a Bundle (R4B or R5) of MedicationRequest, MedicationAdministration and
MedicationStatement resources as mar events, all or nothing.

    events_from_bundle(path) -> [(position, event), ...]   # position = Bundle.entry index
    record_bundle(recorder, path) -> Summary                # what `mar import --format fhir` runs

What maps to what is in docs/fhir.md. In short:

- MedicationRequest (intent order) -> `medication_ordered`, order_id = the resource id; status
  stopped / cancelled / completed / ended adds `order_discontinued` at statusChanged (R5) or
  the end of the dosage period; on-hold adds `order_held` (R5 statusChanged and a
  statusReason); entered-in-error -> `entered_in_error` of the order imported earlier.
- MedicationAdministration (completed) -> `dose_given` against the order named by `request`
  (kind from the order's form); a rate against an infusion order -> `infusion_rate_changed`
  (in-progress allowed there); entered-in-error -> `entered_in_error` of the dose imported
  earlier from the same resource id.
- MedicationStatement (R4B active, R5 recorded and taking) -> `home_medication_recorded`.

The patient is the subject (`Patient/<id>`, an entry of the Bundle, or an identifier in
`urn:mar:patient`), or `patient_id=` for a Bundle about one patient. The patient must already
be registered in mar: FHIR Patient has no time zone, so a Bundle's Patient is never used to
register one. Times must carry a UTC offset; dates alone are refused, never guessed.
Event ids are `fhir:<Type>/<id>:<what>`, so importing the same Bundle twice changes nothing.
Anything not understood is a problem naming the resource and FHIR path; a Bundle with any
problem writes nothing (`mar.errors.InvalidEvents`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import TYPE_CHECKING

from .catalog import Catalog, default_catalog
from .errors import InvalidEvents, Problem
from .fhir_bundle import (
    MAR_ORDER_SYSTEM,
    MAR_PATIENT_SYSTEM,
    Entry,
    FhirBundle,
    FhirProblems,
    Path,
    check_entries,
    concept_text,
    instant,
    modifier_extensions,
    read_bundle,
    reference_text,
    unknown_elements,
)
from .fhir_dosage import Reader

if TYPE_CHECKING:
    from .recording import Recorder, Summary
    from .store import EventStore

# Resources a Bundle may carry for context; nothing is recorded from them.
CONTEXT_TYPES = ("Patient", "Medication", "Practitioner", "PractitionerRole", "Organization")

ORDER_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")
ENDED = ("stopped", "cancelled", "completed", "ended")

# Elements read, plus elements knowingly ignored (administrative or supply details that do
# not change what was ordered, given or taken). Anything else is refused.
REQUEST_ELEMENTS = frozenset({
    "status", "statusReason", "statusChanged", "intent", "doNotPerform", "medicationCodeableConcept",
    "medicationReference", "medication", "subject", "authoredOn", "requester", "reasonCode",
    "reasonReference", "reason", "note", "dosageInstruction", "effectiveDosePeriod",
    # ignored
    "identifier", "category", "priority", "encounter", "supportingInformation", "performer",
    "performerType", "recorder", "instantiatesCanonical", "instantiatesUri", "basedOn",
    "groupIdentifier", "courseOfTherapyType", "insurance", "dispenseRequest", "substitution",
    "priorPrescription", "detectedIssue", "eventHistory", "informationSource",
    "renderedDosageInstruction", "reportedBoolean", "reportedReference", "reported", "device",
})
ADMINISTRATION_ELEMENTS = frozenset({
    "status", "statusReason", "medicationCodeableConcept", "medicationReference", "medication",
    "subject", "effectiveDateTime", "effectivePeriod", "occurenceDateTime", "occurencePeriod",
    "recorded", "isSubPotent", "request", "dosage", "note", "performer",
    # ignored
    "identifier", "instantiates", "basedOn", "partOf", "category", "context", "encounter",
    "supportingInformation", "reasonCode", "reasonReference", "reason", "device", "eventHistory",
})
ADMIN_DOSAGE_ELEMENTS = frozenset({"text", "site", "route", "method", "dose", "rateRatio", "rateQuantity"})
STATEMENT_ELEMENTS = frozenset({
    "status", "statusReason", "medicationCodeableConcept", "medicationReference", "medication",
    "subject", "effectiveDateTime", "effectivePeriod", "dateAsserted", "informationSource",
    "reasonCode", "reasonReference", "reason", "note", "dosage", "adherence",
    # ignored
    "identifier", "basedOn", "partOf", "category", "context", "encounter", "derivedFrom",
    "relatedClinicalInformation", "renderedDosageInstruction",
})
TAKING = ("taking", "taking-as-directed", "taking-not-as-directed")

KIND_FOR_FORM = {"scheduled": "scheduled", "as_needed": "as_needed", "infusion": "bolus"}


def event_key(resource_type: str, resource_id: str, what: str) -> str:
    """The idempotency key (event id) of the event one FHIR resource becomes."""
    return f"fhir:{resource_type}/{resource_id}:{what}"


@dataclass
class KnownOrder:
    drug: str
    route: str
    form: str


def events_from_bundle(path: "str | FilePath | dict", *, patient_id: str | None = None,
                       version: str | None = None, store: "EventStore | None" = None,
                       catalog: Catalog | None = None) -> list[tuple[int, dict]]:
    """The mar events a FHIR Bundle holds, as (Bundle.entry index, event) pairs.

    `store` lets an administration name an order imported earlier (its form gives the kind
    of dose). InvalidEvents lists every problem; the events are not yet checked against the
    chart (Recorder does that)."""
    return _map_bundle(path, patient_id, version, store, catalog)[1]


def record_bundle(recorder: "Recorder", path: "str | FilePath | dict", *, patient_id: str | None = None,
                  version: str | None = None) -> "Summary":
    """Import a Bundle through the one write path; chart problems name the FHIR resource too."""
    bundle, events = _map_bundle(path, patient_id, version, recorder.store, recorder.catalog)
    labels = {e.index: str(e.path) for e in bundle.entries}
    try:
        return recorder.record(events, source=bundle.source)
    except InvalidEvents as exc:
        problems = [Problem(None, f"{labels.get(p.line, 'Bundle')} -> {p.field}", p.value, p.message)
                    for p in exc.problems]
        raise InvalidEvents(problems, bundle.source) from None


def _map_bundle(path, patient_id, version, store, catalog) -> tuple[FhirBundle, list[tuple[int, dict]]]:
    bundle = read_bundle(path, version)
    problems = FhirProblems(bundle.source)
    events = _Importer(bundle, catalog or default_catalog(), problems, patient_id, store).run()
    problems.raise_if_any()
    return bundle, events


class _Importer:
    def __init__(self, bundle: FhirBundle, catalog: Catalog, problems: FhirProblems,
                 patient_id: str | None, store):
        self.bundle = bundle
        self.read = Reader(bundle, catalog, problems)
        self.problems = problems
        self.patient_id = patient_id
        self.store = store
        self.orders: dict[tuple[str, str], KnownOrder] = {}
        self.broken: set[tuple[str, str]] = set()
        self.r5 = bundle.version == "R5"

    def run(self) -> list[tuple[int, dict]]:
        self._one_patient_if_overridden()
        out: list[tuple[int, int, dict]] = []
        handlers = {"MedicationRequest": self.request, "MedicationAdministration": self.administration,
                    "MedicationStatement": self.statement}
        # orders first, so that administrations in the same Bundle find their order's form
        ordered = sorted(self.bundle.entries, key=lambda e: e.type != "MedicationRequest")
        check_entries(self.bundle, self.problems)
        for entry in ordered:
            if (self.bundle.data["entry"][entry.index].get("request") or {}).get("method") in ("DELETE", "PATCH"):
                continue
            if entry.type in CONTEXT_TYPES:
                continue
            handler = handlers.get(entry.type)
            if handler is None:
                self.problems.add(entry.path, entry.type, "resource type not imported by mar "
                                  "(imported: MedicationRequest, MedicationAdministration, "
                                  f"MedicationStatement; accepted as context: {', '.join(CONTEXT_TYPES)})")
                continue
            if not entry.id:
                self.problems.add(entry.path / "id", None, "mar keys orders, doses and corrections by the resource id")
                continue
            modifier_extensions(entry.resource, entry.path, self.problems)
            for event in handler(entry):
                out.append((_phase(event), entry.index, event))
        out.sort(key=lambda t: (t[0], t[1]))
        return [(index, event) for _, index, event in out]

    # --- shared ----------------------------------------------------------------------

    def _one_patient_if_overridden(self) -> None:
        if self.patient_id is None:
            return
        refs = {str((e.resource.get("subject") or {}).get("reference")) for e in self.bundle.entries
                if e.type in ("MedicationRequest", "MedicationAdministration", "MedicationStatement")}
        if len(refs) > 1:
            self.problems.add("Bundle.entry", ", ".join(sorted(refs)), "the Bundle names several "
                              "subjects; a patient id given for the import applies to one")

    def patient(self, entry: Entry) -> str | None:
        if self.patient_id is not None:
            return self.patient_id
        found = self._referenced_id(entry, "subject", "Patient", MAR_PATIENT_SYSTEM)
        if found is not None:
            return found
        ref = entry.resource.get("subject") or {}
        self.problems.add(entry.path / "subject", reference_text(ref),
                          "the subject must be a Patient (Patient/<id>, a Patient entry of the Bundle, "
                          "or an identifier in urn:mar:patient), or give the patient id for the import")
        return None

    def base(self, kind: str, entry: Entry, patient: str | None, at: str | None, key: str) -> dict:
        return {"type": kind, "patient_id": patient, "effective_at": at, "idempotency_key": key}

    def correction(self, entry: Entry, patient: str | None, target: str, clinical: str | None,
                   reason: str | None) -> list[dict]:
        """entered-in-error: the event imported earlier from this resource is corrected."""
        r = entry.resource
        when = clinical or (r.get("meta") or {}).get("lastUpdated") or self.bundle.timestamp
        at = instant(when, entry.path / "status", self.problems, "time of the correction") if when else None
        if when is None:
            self.problems.add(entry.path / "status", "entered-in-error", "no time for the correction: "
                              "give the resource's clinical time, meta.lastUpdated or Bundle.timestamp")
        event = self.base("entered_in_error", entry, patient, at, event_key(entry.type, entry.id, "entered-in-error"))
        event["target_event_id"] = target
        event["reason"] = reason or f"{entry.type} status entered-in-error in the source system"
        return [event]

    def notes(self, *parts) -> str | None:
        flat = [p for part in parts for p in (part if isinstance(part, list) else [part]) if p]
        return "; ".join(flat) or None

    def reasons(self, r: dict) -> str | None:
        if self.r5:
            texts = [concept_text(x.get("concept")) or reference_text(x.get("reference"))
                     for x in r.get("reason") or ()]
        else:
            texts = [concept_text(c) for c in r.get("reasonCode") or ()]
            texts += [reference_text(x) for x in r.get("reasonReference") or ()]
        return "; ".join(t for t in texts if t) or None

    def status_reason(self, r: dict) -> str | None:
        value = r.get("statusReason")
        items = value if isinstance(value, list) else [value] if value else []
        return "; ".join(t for t in (concept_text(c) for c in items) if t) or None

    # --- MedicationRequest -----------------------------------------------------------

    def request(self, entry: Entry) -> list[dict]:
        r, p = entry.resource, entry.path
        unknown_elements(r, p, REQUEST_ELEMENTS, self.problems, "MedicationRequest")
        patient = self.patient(entry)
        status = r.get("status")
        if status == "entered-in-error":
            clinical = r.get("authoredOn") if _is_instant(r.get("authoredOn")) else None
            return self.correction(entry, patient, event_key(entry.type, entry.id, "ordered"),
                                   r.get("statusChanged") or clinical, self.status_reason(r))
        if status not in ("active", "on-hold") + ENDED:
            self.problems.add(p / "status", status, "mar imports active, on-hold, stopped, cancelled, "
                              "completed, ended and entered-in-error orders; a draft or unknown order is not one")
        if r.get("intent") not in ORDER_INTENTS:
            self.problems.add(p / "intent", r.get("intent"), "not an order (a proposal or plan belongs "
                              "in a medication list: mar reconcile --list)")
        if r.get("doNotPerform"):
            self.problems.add(p / "doNotPerform", True, "a request not to give a drug is not an order")
        drug = self.read.medication(entry)
        facts = self.read.single_dosage(r.get("dosageInstruction") or [], p / "dosageInstruction")
        dosing = self.read.dosing(facts) if facts else None
        route = facts.route if facts else None
        if facts and route is None and not self.read.problems_at(facts.path / "route"):
            self.problems.add(facts.path / "route", None, "no route; mar needs it for every order")
        prescriber = reference_text(r.get("requester"))
        if not prescriber:
            self.problems.add(p / "requester", None, "an order needs a prescriber (requester)")
        start, end = self._period(entry, facts)
        authored = r.get("authoredOn")
        at = start or instant(authored, p / "authoredOn", self.problems, "order start (authoredOn)")
        event = self.base("medication_ordered", entry, patient, at, event_key(entry.type, entry.id, "ordered"))
        event.update(order_id=entry.id, drug=drug.name if drug else None, route=route, dosing=dosing,
                     prescriber=prescriber, indication=self.reasons(r))
        if _is_instant(authored):
            event["recorded_at"] = authored
        authored_note = f"authored {authored}" if authored and not _is_instant(authored) else None
        event["note"] = self.notes([n.get("text") for n in r.get("note") or ()],
                                   [facts.sig] + facts.notes if facts else [], authored_note)
        if drug and route and dosing:
            self.orders[(patient or "", entry.id)] = KnownOrder(drug.name, route, dosing["form"])
        else:
            self.broken.add((patient or "", entry.id))  # its own problems say why
        return [_clean(event)] + self._request_status(entry, patient, status, end)

    def _period(self, entry: Entry, facts) -> tuple[str | None, str | None]:
        """Start and end of the order: R5 effectiveDosePeriod, else the dosage bounds."""
        period = entry.resource.get("effectiveDosePeriod") or {}
        here = entry.path / "effectiveDosePeriod"
        start = instant(period["start"], here / "start", self.problems, "start") if period.get("start") else None
        end = instant(period["end"], here / "end", self.problems, "end") if period.get("end") else None
        if facts:
            start, end = start or facts.start, end or facts.end
        return start, end

    def _request_status(self, entry: Entry, patient: str | None, status: str, end: str | None) -> list[dict]:
        r, p = entry.resource, entry.path
        changed = r.get("statusChanged")
        changed_at = instant(changed, p / "statusChanged", self.problems, "status change") if changed else None
        if status == "active":
            if end:
                self.problems.add(p, end, "an active order with a planned end: mar orders run until "
                                  "discontinued; send the order without the end, then its discontinuation")
            return []
        if status == "on-hold":
            reason = self.status_reason(r)
            if changed_at is None or reason is None:
                self.problems.add(p / "status", status, "an order on hold needs when (statusChanged, R5) "
                                  "and why (statusReason)")
                return []
            held = self.base("order_held", entry, patient, changed_at, event_key(entry.type, entry.id, "held"))
            return [dict(held, order_id=entry.id, reason=reason)]
        stop = changed_at or end
        if stop is None:
            self.problems.add(p / "status", status, "a stopped order needs the time it stopped: statusChanged "
                              "(R5), effectiveDosePeriod.end or the dosage timing's boundsPeriod.end")
            return []
        stopped = self.base("order_discontinued", entry, patient, stop,
                            event_key(entry.type, entry.id, "discontinued"))
        reason = self.status_reason(r) or f"MedicationRequest status {status} in the source system"
        return [dict(stopped, order_id=entry.id, reason=reason)]

    # --- MedicationAdministration ------------------------------------------------------

    def administration(self, entry: Entry) -> list[dict]:
        r, p = entry.resource, entry.path
        unknown_elements(r, p, ADMINISTRATION_ELEMENTS, self.problems, "MedicationAdministration")
        patient = self.patient(entry)
        status = r.get("status")
        at = self._occurrence(entry)
        if status == "entered-in-error":
            return self.correction(entry, patient, event_key(entry.type, entry.id, "given"), at,
                                   self.status_reason(r))
        if status not in ("completed", "in-progress"):
            self.problems.add(p / "status", status, "mar imports completed administrations (and in-progress "
                              "infusion rates); a dose not given is recorded as mar JSON (dose_not_given)")
        if r.get("isSubPotent"):
            self.problems.add(p / "isSubPotent", True, "a sub-potent dose is not recorded by mar as given")
        order_id = self._order_id(entry)
        order = self._known_order(patient, order_id, p / "request")
        drug = self.read.medication(entry)
        if drug and order and drug.name != order.drug:
            self.problems.add(p, drug.name, f"the order {order_id} is for {order.drug}")
        if order is None:  # still report what else is wrong with it
            self._amounts_checked(entry, infusion=False)
            dosage = r.get("dosage") or {}
            if dosage.get("route"):
                self.read.route(dosage["route"], p / "dosage" / "route")
            return []
        event = self._given(entry, patient, at, order_id, order)
        if event is None:
            return []
        if r.get("recorded"):
            event["recorded_at"] = instant(r["recorded"], p / "recorded", self.problems, "recorded")
        event["note"] = self._admin_notes(r, r.get("dosage") or {}, order.form in ("infusion", "pca"))
        return [_clean(event)]

    def _amounts_checked(self, entry: Entry, infusion: bool) -> tuple[dict | None, dict | None]:
        """Dose and (on an infusion order) rate of an administration, each checked."""
        dosage, dp = entry.resource.get("dosage") or {}, entry.path / "dosage"
        unknown_elements(dosage, dp, ADMIN_DOSAGE_ELEMENTS, self.problems, "MedicationAdministration.dosage")
        dose = self.read.mass(dosage.get("dose"), dp / "dose")
        rate = self.read.rate(dosage, dp, allow_zero=True) if infusion else None
        return dose, rate

    def _given(self, entry: Entry, patient: str | None, at: str | None, order_id: str,
               order: KnownOrder) -> dict | None:
        """A rate change on an infusion order, else a dose of the kind its order's form implies."""
        p, dp = entry.path, entry.path / "dosage"
        dosage = entry.resource.get("dosage") or {}
        dose, rate = self._amounts_checked(entry, infusion=order.form in ("infusion", "pca"))
        key = event_key(entry.type, entry.id, "given")
        if rate is not None:
            if dose is not None:
                self.problems.add(dp, None, "a dose and a rate on an infusion order: mar cannot tell a "
                                  "bolus from its delivery rate; send them as two administrations")
                return None
            return dict(self.base("infusion_rate_changed", entry, patient, at, key), order_id=order_id, rate=rate)
        if dose is None:
            if not self.read.problems_at(dp):
                self.problems.add(dp, None, "no dose (or, on an infusion order, rate) given")
            return None
        if entry.resource.get("status") == "in-progress":
            self.problems.add(p / "status", "in-progress", "a dose is recorded when the administration is completed")
        kind = KIND_FOR_FORM.get(order.form)
        if kind is None:
            self.problems.add(dp / "dose", dose, "a dose on a PCA order may be a demand or a clinician "
                              "bolus; record it as mar JSON with its kind")
        # no route on the administration: the route of the order it fulfils (mar requires them equal)
        route = self.read.route(dosage["route"], dp / "route") if dosage.get("route") else order.route
        return dict(self.base("dose_given", entry, patient, at, key), order_id=order_id, dose=dose,
                    route=route, kind=kind)

    def _occurrence(self, entry: Entry) -> str | None:
        r, p = entry.resource, entry.path
        prefix = "occurence" if self.r5 else "effective"
        if r.get(f"{prefix}DateTime"):
            return instant(r[f"{prefix}DateTime"], p / f"{prefix}DateTime", self.problems, "time given")
        period = r.get(f"{prefix}Period") or {}
        if period.get("start"):
            return instant(period["start"], p / f"{prefix}Period" / "start", self.problems, "time given")
        self.problems.add(p / f"{prefix}[x]", None, "mar needs the time the dose was given "
                          f"({prefix}DateTime or {prefix}Period.start)")
        return None

    def _referenced_id(self, entry: Entry, field: str, resource_type: str, system: str) -> str | None:
        """The id a reference names: a mar identifier, a Bundle entry, or a literal Type/id."""
        ref = entry.resource.get(field) or {}
        ident = ref.get("identifier") or {}
        if ident.get("system") == system and ident.get("value"):
            return ident["value"]
        text = ref.get("reference") or ""
        target = self.bundle.resolve(text, entry) if text else None
        if target and target[0].get("resourceType") == resource_type and target[0].get("id"):
            return target[0]["id"]
        marker = f"{resource_type}/"
        if text.startswith(marker) or f"/{marker}" in text:
            return text.rsplit(marker, 1)[1].split("/")[0]
        return None

    def _order_id(self, entry: Entry) -> str | None:
        found = self._referenced_id(entry, "request", "MedicationRequest", MAR_ORDER_SYSTEM)
        if found is not None:
            return found
        ref = entry.resource.get("request") or {}
        self.problems.add(entry.path / "request", reference_text(ref), "mar records a dose against its "
                          "order: request must name the MedicationRequest")
        return None

    def _known_order(self, patient: str | None, order_id: str | None, path: Path) -> KnownOrder | None:
        if order_id is None or patient is None:
            return None
        known = self.orders.get((patient, order_id))
        if (patient, order_id) in self.broken:
            return None
        if known is None and self.store is not None:
            facts = self.store.load_chart(patient).order(order_id)
            if facts is not None:
                known = KnownOrder(facts.drug, facts.route, facts.form)
        if known is None:
            where = "this Bundle nor the store" if self.store is not None else "this Bundle"
            self.problems.add(path, order_id, f"no order {order_id} for patient {patient} in {where}")
        return known

    def _admin_notes(self, r: dict, dosage: dict, infusion: bool) -> str | None:
        given_by = []
        for perf in r.get("performer") or ():
            actor = perf.get("actor") or {}
            if self.r5:  # R5 actor is a CodeableReference
                name = reference_text(actor.get("reference")) or concept_text(actor.get("concept"))
            else:
                name = reference_text(actor)
            if name:
                given_by.append(f"given by {name}")
        rate_note = None
        if not infusion and (dosage.get("rateQuantity") or dosage.get("rateRatio")):
            rate_note = f"administration rate as sent: {_show_rate(dosage)}"
        extra = [f"{k}: {concept_text(dosage.get(k))}" for k in ("site", "method") if concept_text(dosage.get(k))]
        return self.notes([n.get("text") for n in r.get("note") or ()], dosage.get("text"), extra,
                          given_by, rate_note)

    # --- MedicationStatement -----------------------------------------------------------

    def statement(self, entry: Entry) -> list[dict]:
        r, p = entry.resource, entry.path
        unknown_elements(r, p, STATEMENT_ELEMENTS, self.problems, "MedicationStatement")
        patient = self.patient(entry)
        status = r.get("status")
        at = self._statement_time(entry)
        if status == "entered-in-error":
            return self.correction(entry, patient, event_key(entry.type, entry.id, "recorded"), at,
                                   self.status_reason(r))
        self._taking(entry)
        drug = self.read.medication(entry)
        facts = self.read.single_dosage(r.get("dosage") or [], p / "dosage")
        dosing = self.read.dosing(facts) if facts else None
        if facts and facts.route is None and not self.read.problems_at(facts.path / "route"):
            self.problems.add(facts.path / "route", None, "no route; mar needs it for every medication")
        event = self.base("home_medication_recorded", entry, patient, at,
                          event_key(entry.type, entry.id, "recorded"))
        event.update(drug=drug.name if drug else None, route=facts.route if facts else None, dosing=dosing,
                     indication=self.reasons(r), source=self._source(r))
        if _is_instant(r.get("dateAsserted")):
            event["recorded_at"] = r["dateAsserted"]
        event["note"] = self.notes([n.get("text") for n in r.get("note") or ()],
                                   [facts.sig] + facts.notes if facts else [])
        return [_clean(event)]

    def _taking(self, entry: Entry) -> None:
        r, p = entry.resource, entry.path
        status = r.get("status")
        if self.r5:
            if status != "recorded":
                self.problems.add(p / "status", status, "a home medication is a recorded statement")
            code = ((r.get("adherence") or {}).get("code") or {}).get("coding") or [{}]
            if r.get("adherence") and code[0].get("code") not in TAKING:
                self.problems.add(p / "adherence" / "code", code[0].get("code"), "mar's home list holds what "
                                  "the patient takes; a medication not taken is not on it")
        elif status != "active":
            self.problems.add(p / "status", status, "mar's home list holds what the patient takes "
                              "(status active); stopped, completed, intended or not-taken medications are not on it")

    def _statement_time(self, entry: Entry) -> str | None:
        r, p = entry.resource, entry.path
        if r.get("effectiveDateTime"):
            return instant(r["effectiveDateTime"], p / "effectiveDateTime", self.problems, "time of the statement")
        if (r.get("effectivePeriod") or {}).get("start"):
            return instant(r["effectivePeriod"]["start"], p / "effectivePeriod" / "start", self.problems,
                           "time of the statement")
        if r.get("dateAsserted"):
            return instant(r["dateAsserted"], p / "dateAsserted", self.problems, "time of the statement")
        self.problems.add(p / "effective[x]", None, "mar needs when the medication was recorded "
                          "(effectiveDateTime, effectivePeriod.start or dateAsserted)")
        return None

    def _source(self, r: dict) -> str | None:
        src = r.get("informationSource")
        items = src if isinstance(src, list) else [src] if src else []
        return "; ".join(t for t in (reference_text(x) for x in items) if t) or None


def _phase(event: dict) -> int:
    """Orders and home medications first, corrections last, so each finds what it names."""
    if event["type"] in ("medication_ordered", "home_medication_recorded"):
        return 0
    return 2 if event["type"] == "entered_in_error" else 1


def _clean(event: dict) -> dict:
    return {k: v for k, v in event.items() if v is not None}


def _is_instant(text: object) -> bool:
    return isinstance(text, str) and "T" in text and (text.endswith("Z") or "+" in text[10:] or "-" in text[10:])


def _show_rate(dosage: dict) -> str:
    q = dosage.get("rateQuantity")
    if q:
        return f"{q.get('value')} {q.get('unit') or q.get('code')}"
    ratio = dosage.get("rateRatio") or {}
    num, den = ratio.get("numerator") or {}, ratio.get("denominator") or {}
    return (f"{num.get('value')} {num.get('unit') or num.get('code')} per "
            f"{den.get('value')} {den.get('unit') or den.get('code')}")
