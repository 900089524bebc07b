"""`mar export --format fhir`: the stored events as one FHIR R5 Bundle (type collection).

For each stored event, in store order, the resource it maps to, then a Provenance for it
(docs/fhir.md, "Export"). The Bundle is a rendering for FHIR readers; the JSON Lines export
stays the lossless one (`mar import` reads it back).

Resources that change over time are versions of one resource (same id and fullUrl,
`meta.versionId` counting up): the Patient (registered, died), the Encounter of a stay
(admitted or readmitted, transferred, discharged). Each order event (ordered, changed, held,
resumed, discontinued) is a MedicationRequest of its own: the order as it stands after the
event, identified by the order id (`urn:mar:order`), `priorPrescription` naming the one it
replaces. A correction (`entered_in_error`) is a new version of the target's resource with
status entered-in-error (a Patient or stay is rebuilt without the voided event).

Drug coding, route, dose, rate and timing are `fhir_out`'s, so an exported order reads like
a handoff line; a PCA is its two concurrent instructions (demand dose, basal rate), which
mar's FHIR import reads back as a PCA.
"""
from __future__ import annotations

import copy
import uuid
from datetime import datetime, timezone
from typing import Iterator

from pydantic import ValidationError

from .catalog import Catalog, default_catalog
from .errors import InvalidEvents
from .export import export_events
from .fhir_bundle import FHIR_VERSION_SYSTEM, MAR_ORDER_SYSTEM, MAR_PATIENT_SYSTEM, UCUM, Path, \
    model_class, validation_problem
from .fhir_out import HandoffPacket, PacketLine, _mass, _rate, _route, _show, _Writer
from .store import EventStore

STORED_EVENT = "urn:mar:fhir:stored-event"    # extension on each Provenance
MAR_USER_SYSTEM = "urn:mar:user"
EVENT_TYPE_SYSTEM = "urn:mar:event-type"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
LOINC = "http://loinc.org"
TZ_CODE = "http://hl7.org/fhir/StructureDefinition/tz-code"
UCUM_WEIGHT = {"kg": "kg", "g": "g", "lb": "[lb_av]"}
_NS = uuid.UUID("6f1c1f1e-5a8e-4d53-9d55-7d0b8f5e2c11")  # fixed: the same event gives the same id


def export_fhir(store: EventStore, patient_id: str | None = None, catalog: Catalog | None = None) -> dict:
    """Every stored event (or one patient's) as a validated FHIR R5 Bundle (a JSON-ready dict).

    UnknownPatient when `patient_id` has no events."""
    entries = list(_Exporter(catalog or default_catalog()).entries(export_events(store, patient_id)))
    scope = patient_id or "all"
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(_NS, f"bundle:{scope}:{len(entries)}")),
        "meta": {"tag": [{"system": FHIR_VERSION_SYSTEM, "code": "5.0.0"}]},
        "identifier": {"system": "urn:mar:export", "value": scope},
        "type": "collection",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "entry": entries,
    }
    _validate(bundle)
    return bundle


def _rid(*parts: str) -> str:
    return str(uuid.uuid5(_NS, ":".join(parts)))


def _subject(patient_id: str) -> dict:
    """The export's own Patient resource (its id is a UUID: a mar patient id need not be a FHIR id)."""
    return {"reference": f"urn:uuid:{_rid('patient', patient_id)}", "display": patient_id}


def _user(name: str) -> dict:
    return {"identifier": {"system": MAR_USER_SYSTEM, "value": name}, "display": name}


def _note(*texts: str | None) -> list[dict]:
    return [{"text": t} for t in texts if t]


class _Exporter:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.versions: dict[str, int] = {}       # resource id -> current version
        self.latest: dict[str, dict] = {}        # resource id -> current resource
        self.made_by: dict[str, str] = {}        # event id -> resource id (its Provenance's, for acks)
        self.orders: dict[str, dict] = {}        # (patient, order id) -> current MedicationRequest
        self.stay: dict[str, str] = {}           # patient -> Encounter id of the current stay
        self.stay_events: dict[str, list[dict]] = {}  # Encounter id -> its transitions
        self.patient_events: dict[str, list[dict]] = {}
        self.voided: set[str] = set()

        # fhir_out's writer, for its drug coding and Dosage only (they do not use the packet)
        self.fhir = _Writer(HandoffPacket("export", datetime.now(timezone.utc)), "R5", catalog)

    def entries(self, events) -> Iterator[dict]:
        for e in events:
            resource = getattr(self, e["type"])(e)
            if resource is not None:
                yield self.entry(resource)
            prov = self.provenance(e, resource)
            if resource is None:
                self.made_by[e["event_id"]] = prov["id"]
            yield self.entry(prov)

    def entry(self, resource: dict) -> dict:
        return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}

    def version(self, resource: dict, event: dict | None) -> dict:
        """Stamp the next version of a resource; remember it as the current one."""
        rid = resource["id"]
        self.versions[rid] = self.versions.get(rid, 0) + 1
        resource["meta"] = {"versionId": str(self.versions[rid])}
        self.latest[rid] = resource
        if event is not None:
            self.made_by[event["event_id"]] = rid
        return resource

    # --- Patient ------------------------------------------------------------------------

    def patient_registered(self, e: dict) -> dict:
        self.patient_events.setdefault(e["patient_id"], []).append(e)
        return self.version(self.patient(e["patient_id"]), e)

    def died(self, e: dict) -> dict:
        self.patient_events.setdefault(e["patient_id"], []).append(e)
        return self.version(self.patient(e["patient_id"]), e)

    def patient(self, patient_id: str) -> dict:
        out = {"resourceType": "Patient", "id": _rid("patient", patient_id),
               "identifier": [{"system": MAR_PATIENT_SYSTEM, "value": patient_id}]}
        for e in self.patient_events.get(patient_id, ()):
            if e["event_id"] in self.voided:
                continue
            if e["type"] == "patient_registered":
                out["extension"] = [{"url": TZ_CODE, "valueCode": e["timezone"]}]
                if e.get("display_name"):
                    out["name"] = [{"text": e["display_name"]}]
            else:
                out["deceasedDateTime"] = e["effective_at"]
        return out

    # --- Encounter ----------------------------------------------------------------------

    def admitted(self, e: dict) -> dict:
        rid = _rid("encounter", e["event_id"])
        self.stay[e["patient_id"]] = rid
        self.stay_events[rid] = [e]
        return self.version(self.encounter(rid, e["patient_id"]), e)

    readmitted = admitted

    def transferred(self, e: dict) -> dict:
        rid = self.stay[e["patient_id"]]
        self.stay_events[rid].append(e)
        return self.version(self.encounter(rid, e["patient_id"]), e)

    discharged = transferred

    def encounter(self, rid: str, patient_id: str) -> dict:
        """The stay as its transitions (not entered in error) describe it."""
        events = [t for t in self.stay_events[rid] if t["event_id"] not in self.voided]
        out = {"resourceType": "Encounter", "id": rid, "status": "in-progress", "subject": _subject(patient_id)}
        if not events or events[0]["type"] not in ("admitted", "readmitted"):
            out["status"] = "entered-in-error"
            return out
        start, locations = events[0], []
        out["actualPeriod"] = {"start": start["effective_at"]}
        if start.get("reason"):
            out["reason"] = [{"value": [{"concept": {"text": start["reason"]}}]}]
        if start.get("from_facility"):
            out["admission"] = {"origin": {"display": start["from_facility"]}}
        for t in events:
            place = t.get("location") or t.get("to_location")
            if locations and t["type"] != "admitted":
                locations[-1]["period"]["end"] = t["effective_at"]
            if place:
                locations.append({"location": {"display": place}, "period": {"start": t["effective_at"]}})
            if t["type"] == "discharged":
                out["status"] = "completed"
                out["actualPeriod"]["end"] = t["effective_at"]
                out.setdefault("admission", {}).update(
                    dischargeDisposition={"text": t["destination"]}, destination={"display": t["destination"]})
        out["location"] = locations
        return out

    # --- observations and statements ----------------------------------------------------

    def weight_recorded(self, e: dict) -> dict:
        w = e["weight"]
        return self.version({
            "resourceType": "Observation", "id": _rid("event", e["event_id"]), "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}],
                     "text": "body weight"},
            "subject": _subject(e["patient_id"]), "effectiveDateTime": e["effective_at"],
            "issued": e["recorded_at"], "performer": [_user(e["recorded_by"])],
            "valueQuantity": {"value": w["value"], "unit": w["unit"], "system": UCUM,
                              "code": UCUM_WEIGHT[w["unit"]]},
            **({"note": _note(e.get("note"))} if e.get("note") else {}),
        }, e)

    def home_medication_recorded(self, e: dict) -> dict:
        out = {"resourceType": "MedicationStatement", "id": _rid("event", e["event_id"]), "status": "recorded",
               "medication": {"concept": self.fhir.concept(e["drug"])},
               "subject": _subject(e["patient_id"]), "effectiveDateTime": e["effective_at"],
               "dateAsserted": e["recorded_at"], "dosage": self.dosages(e),
               "adherence": {"code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/"
                                                  "medication-statement-adherence", "code": "taking"}]}}}
        if e.get("source"):
            out["informationSource"] = [{"display": e["source"]}]
        if e.get("indication"):
            out["reason"] = [{"concept": {"text": e["indication"]}}]
        if e.get("note"):
            out["note"] = _note(e["note"])
        return self.version(out, e)

    # --- orders -------------------------------------------------------------------------

    def medication_ordered(self, e: dict) -> dict:
        order = {"drug": e["drug"], "route": e["route"], "dosing": e["dosing"], "prescriber": e["prescriber"],
                 "indication": e.get("indication"), "start": e["effective_at"]}
        return self.order_version(e, order, "active")

    def order_changed(self, e: dict) -> dict:
        order = self.order_state(e)
        order["dosing"] = dict(order["dosing"])
        for name in ("dose", "frequency", "rate", "max_daily", "demand_dose", "lockout_minutes",
                     "basal_rate", "limit"):
            if e.get(name) is not None:
                order["dosing"][name] = e[name]
        order["route"] = e.get("route") or order["route"]
        order["prescriber"] = e.get("prescriber") or order["prescriber"]
        order["start"] = e["effective_at"]  # the changed dosage applies from the change
        return self.order_version(e, order, "active", change=e["reason"])

    def order_held(self, e: dict) -> dict:
        return self.order_version(e, self.order_state(e), "on-hold", status_reason=e["reason"])

    def order_resumed(self, e: dict) -> dict:
        return self.order_version(e, self.order_state(e), "active", status_reason=e.get("reason"))

    def order_discontinued(self, e: dict) -> dict:
        order = {**self.order_state(e), "end": e["effective_at"]}
        return self.order_version(e, order, "stopped", status_reason=e["reason"])

    def order_state(self, e: dict) -> dict:
        return dict(self.orders[(e["patient_id"], e["order_id"])]["_order"])

    def order_version(self, e: dict, order: dict, status: str, change: str | None = None,
                      status_reason: str | None = None) -> dict:
        key = (e["patient_id"], e["order_id"])
        prior = self.orders.get(key)
        out = {"resourceType": "MedicationRequest", "id": _rid("event", e["event_id"]),
               "identifier": [{"system": MAR_ORDER_SYSTEM, "value": e["order_id"]}],
               "status": status, "intent": "order",
               "medication": {"concept": self.fhir.concept(order["drug"])},
               "subject": _subject(e["patient_id"]), "authoredOn": e["recorded_at"],
               "requester": {"display": order["prescriber"]}, "recorder": _user(e["recorded_by"]),
               "dosageInstruction": self.dosages(order), "effectiveDosePeriod": {"start": order["start"]}}
        if order.get("end"):
            out["effectiveDosePeriod"]["end"] = order["end"]
        if order.get("indication"):
            out["reason"] = [{"concept": {"text": order["indication"]}}]
        if e["type"] != "medication_ordered":
            out["statusChanged"] = e["effective_at"]
        if status_reason:
            out["statusReason"] = {"text": status_reason}
        if prior is not None:
            out["priorPrescription"] = {"reference": f"urn:uuid:{prior['id']}"}
        notes = _note(change and f"changed: {change}", e.get("note"))
        if notes:
            out["note"] = notes
        self.orders[key] = {**out, "_order": order}
        return self.version(out, e)

    # --- administrations ----------------------------------------------------------------

    def administration(self, e: dict, status: str) -> dict:
        order = self.orders[(e["patient_id"], e["order_id"])]
        out = {"resourceType": "MedicationAdministration", "id": _rid("event", e["event_id"]),
               "status": status, "medication": order["medication"], "subject": _subject(e["patient_id"]),
               "occurenceDateTime": e["effective_at"], "recorded": e["recorded_at"],
               "performer": [{"actor": {"reference": _user(e["recorded_by"])}}],
               "request": {"reference": f"urn:uuid:{order['id']}"}}
        if e.get("note"):
            out["note"] = _note(e["note"])
        return out

    def dose_given(self, e: dict) -> dict:
        out = self.administration(e, "completed")
        out["dosage"] = {"text": f"{_show(e['dose'])} {e['route']} ({e['kind'].replace('_', ' ')})",
                         "route": _route(e["route"], self.catalog), "dose": _mass(e["dose"])}
        return self.version(out, e)

    def infusion_rate_changed(self, e: dict) -> dict:
        rate = e["rate"]
        out = self.administration(e, "in-progress" if rate["value"] > 0 else "stopped")
        out["dosage"] = {"text": f"rate set to {_show(rate)}" + (" (stopped)" if not rate["value"] else ""),
                         "rateQuantity": _rate(rate)}
        if e.get("reason"):
            out["note"] = _note(f"rate changed: {e['reason']}", e.get("note"))
        return self.version(out, e)

    def dose_not_given(self, e: dict) -> dict:
        out = self.administration(e, "not-done")
        out["statusReason"] = [{"text": e["status_reason"]}]
        return self.version(out, e)

    # --- corrections and acknowledgements ------------------------------------------------

    def entered_in_error(self, e: dict) -> dict | None:
        target = e["target_event_id"]
        self.voided.add(target)
        rid = self.made_by.get(target)
        if rid is None or rid not in self.latest:
            return None  # an acknowledgement's Provenance: the correction's Provenance names it
        current = self.latest[rid]
        if current["resourceType"] == "Patient":
            out = self.patient(e["patient_id"])
        elif current["resourceType"] == "Encounter":
            out = self.encounter(rid, e["patient_id"])
        else:
            out = copy.deepcopy(current)
            out["status"] = "entered-in-error"
            if current["resourceType"] in _NOTED:
                out["note"] = out.get("note", []) + _note(f"entered in error: {e['reason']}")
        self.made_by[target] = rid
        return self.version(out, None)

    def alert_acknowledged(self, e: dict) -> None:
        return None

    # --- Provenance ---------------------------------------------------------------------

    def provenance(self, e: dict, resource: dict | None) -> dict:
        if resource is not None:
            target = {"reference": f"urn:uuid:{resource['id']}"}
        elif e["type"] == "entered_in_error" and e["target_event_id"] in self.made_by:
            target = {"reference": f"urn:uuid:{self.made_by[e['target_event_id']]}"}
        else:
            target = _subject(e["patient_id"])
        activity = {"coding": [{"system": EVENT_TYPE_SYSTEM, "code": e["type"]}], "text": _activity(e)}
        stored = [("event-id", "valueString", e["event_id"]), ("chain", "valueString", e["chain"]),
                  ("digest", "valueString", e["digest"]), ("stream-version", "valueInteger", e["version"]),
                  ("stored-at", "valueInstant", e["stored_at"])]
        return {
            "resourceType": "Provenance", "id": _rid("provenance", e["event_id"]),
            "extension": [{"url": STORED_EVENT,
                           "extension": [{"url": name, kind: value} for name, kind, value in stored]}],
            "target": [target], "occurredDateTime": e["effective_at"], "recorded": e["recorded_at"],
            "activity": activity, "patient": _subject(e["patient_id"]),
            "agent": [_agent("author", e["recorded_by"]), _agent("enterer", e["stored_by"])],
        }

    # --- dosage -------------------------------------------------------------------------

    def dosages(self, med: dict) -> list[dict]:
        """fhir_out's Dosage instructions of a medication (two for a PCA)."""
        line = PacketLine(medication={k: med[k] for k in ("drug", "route", "dosing")}, flag="unchanged")
        if med["dosing"]["form"] == "pca":
            return self.fhir.pca(line.medication, line)
        return [self.fhir.dosage(line.medication, line)]


_NOTED = ("MedicationRequest", "MedicationAdministration", "MedicationStatement", "Observation")


def _agent(role: str, name: str) -> dict:
    return {"type": {"coding": [{"system": PARTICIPANT, "code": role}]}, "who": _user(name)}


def _activity(e: dict) -> str:
    text = e["type"].replace("_", " ")
    if e["type"] == "alert_acknowledged":
        return f"{text}: {e['alert_id']}: {e['reason']}"
    if e["type"] == "entered_in_error":
        return f"{text}: {e['target_event_id']}: {e['reason']}"
    return text


def _validate(bundle: dict) -> None:
    try:
        model_class("R5", "Bundle").model_validate(bundle)
    except ValidationError as exc:
        problems = [validation_problem(Path("Bundle"), err, "R5") for err in exc.errors()]
        raise InvalidEvents(problems, "export FHIR Bundle") from None
