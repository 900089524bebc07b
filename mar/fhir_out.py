"""The handoff packet as a FHIR Bundle (R5, or R4B), checked before it is returned.

Input is plain data (the transitions code builds it from the projections):

    packet = HandoffPacket(
        patient_id="ref-001", at=datetime(...),            # aware datetime
        lines=[PacketLine(medication={...ListedMedication JSON...}, flag="unchanged",
                          reason=None, started_at=None, last_given_at=None), ...],
        alerts=[PacketAlert(alert_id="...", severity="high", title="omission",
                            detail="memantine ...", drugs=("memantine",),
                            evidence=("on the list at POD 47", ...)), ...])
    bundle = handoff_bundle(packet, version="R5")   # a JSON-ready dict

`flag` is the FHIR list-item-flag of the line: unchanged, changed, prescribed (the lines the
patient goes on with), cancelled or ceased (stopped; sent so the receiver sees the stop).
`flag_for(status)` maps reconciliation statuses (continued, changed, new, stopped); an
omission has no flag: it is an open alert. `reason` (why it changed or stopped) is the
flag's text, and for stopped lines also the statement's status reason (R4B statusReason,
R5 adherence.reason).

The Bundle (type collection, tagged with its FHIR version) holds:
- a List (status current, mode snapshot) whose entries reference the statements, flagged;
- a MedicationStatement per line: RxNorm ingredient coding of the catalog drug (or
  `urn:mar:drug` for a site drug without one), Dosage (dose or rate, route as SNOMED CT,
  timing, as needed, daily maximum), reason = indication, note, derivedFrom = the inpatient
  order (identifier in `urn:mar:order`), effectivePeriod.start = started_at; current lines are
  active (R4B) / recorded and taking (R5), stopped lines stopped;
- a DetectedIssue per open alert: severity, code (title), detail, evidence, implicated =
  the statements of the named drugs (a drug not on the list, such as an omission, is named
  by display).

`mar.fhir_lists.medication_list_from_bundle(bundle)` gives back exactly the `medication` of
the unchanged, changed and prescribed lines. A PCA, which one FHIR Dosage cannot hold, is
two concurrent instructions (the same `sequence`), each marked by its `method` in
`urn:mar:dosing`: `pca-demand` (the demand dose as needed, at most once per lockout as its
timing, the 1- or 4-hour limit as maxDosePerPeriod) and `pca-basal` (the basal rate), so a
receiver that knows nothing of mar still reads what runs and what the patient may give.

Checks (docs/decisions/0004-fhir-output-validation.md): each line is checked as a mar list
line by `mar.list_line` (what the ListedMedication model accepts, without pydantic), and every
value of the Bundle against its FHIR type by `mar.fhir_values`. The shape of the resources
is fixed by this code; tests/unit/test_fhir_out_valid.py validates it with the fhir.resources
models on generated packets and on the reference case, so the command does not build those
models (about 0.3 s of each process).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from . import fhir_values
from .catalog import Catalog, default_catalog
from .errors import InvalidEvents, MarError
from .fhir_bundle import (
    FHIR_ID,
    FHIR_VERSION_SYSTEM,
    MAR_ALERT_SYSTEM,
    MAR_DOSING_SYSTEM,
    MAR_DRUG_SYSTEM,
    MAR_ORDER_SYSTEM,
    MAR_PATIENT_SYSTEM,
    RXNORM,
    SNOMED,
    UCUM,
)
from .fhir_dosage import PER_DAY_CODES, ROUTE_DISPLAY, ROUTE_SNOMED, UCUM_MASS, UCUM_RATE
from .list_line import NotAListLine, listed_medication

LIST_ITEM_FLAG = "http://terminology.hl7.org/CodeSystem/list-item-flag"
ADHERENCE = "http://hl7.org/fhir/CodeSystem/medication-statement-adherence"
FLAGS = {"unchanged": ("01", "Unchanged"), "changed": ("02", "Changed"), "cancelled": ("03", "Cancelled"),
         "prescribed": ("04", "Prescribed"), "ceased": ("05", "Ceased")}
CURRENT_FLAGS = ("unchanged", "changed", "prescribed")
SEVERITIES = ("high", "moderate", "low")
VERSION_CODES = {"R5": "5.0.0", "R4B": "4.3.0"}

_STATUS_FLAGS = {"continued": "unchanged", "changed": "changed", "new": "prescribed", "stopped": "ceased"}
_PER_DAY = {v: k for k, v in PER_DAY_CODES.items()}


def flag_for(status: str) -> str:
    """The list-item flag of a reconciliation status (continued, changed, new, stopped)."""
    if status not in _STATUS_FLAGS:
        raise MarError(f"no list flag for reconciliation status {status!r}: an omission is an open "
                       "alert (DetectedIssue), not a list entry")
    return _STATUS_FLAGS[status]


@dataclass(frozen=True)
class PacketLine:
    medication: dict                  # ListedMedication as JSON
    flag: str                         # unchanged | changed | prescribed | cancelled | ceased
    reason: str | None = None         # why it changed or stopped
    started_at: datetime | None = None
    last_given_at: datetime | None = None


@dataclass(frozen=True)
class PacketAlert:
    alert_id: str
    severity: str                     # high | moderate | low
    title: str
    detail: str
    drugs: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    identified_at: datetime | None = None


@dataclass(frozen=True)
class HandoffPacket:
    patient_id: str
    at: datetime
    lines: tuple[PacketLine, ...] | list = ()
    alerts: tuple[PacketAlert, ...] | list = ()
    title: str = "Medication list at transition of care"


def handoff_bundle(packet: HandoffPacket, version: str = "R5", catalog: Catalog | None = None) -> dict:
    """The packet as a FHIR Bundle (JSON-ready dict), validated before it is returned."""
    if version not in VERSION_CODES:
        raise MarError(f"unsupported FHIR version {version!r}; use R5 or R4B")
    if packet.at.tzinfo is None:
        raise MarError("the packet time needs a UTC offset")
    return _Writer(packet, version, catalog or default_catalog()).bundle()


class _Writer:
    def __init__(self, packet: HandoffPacket, version: str, catalog: Catalog):
        self.p = packet
        self.r5 = version == "R5"
        self.version = version
        self.catalog = catalog
        self.at = packet.at.isoformat()
        self.subject = _patient_ref(packet.patient_id)

    def url(self, kind: str, n: int = 0) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mar:{self.p.patient_id}:{self.at}:{kind}:{n}"))

    def bundle(self) -> dict:
        lines = [self._checked(i, line) for i, line in enumerate(self.p.lines)]
        ids = [self.url("statement", i) for i in range(len(lines))]
        statements = [self.statement(line, sid) for line, sid in zip(lines, ids)]
        alerts = [self.issue(a, i, lines, ids) for i, a in enumerate(self.p.alerts)]
        resources = [self.list(lines, ids)] + statements + alerts
        data = {
            "resourceType": "Bundle",
            "id": self.url("bundle"),
            "meta": {"tag": [{"system": FHIR_VERSION_SYSTEM, "code": VERSION_CODES[self.version]}]},
            "identifier": {"system": "urn:mar:handoff", "value": f"{self.p.patient_id}@{self.at}"},
            "type": "collection",
            "timestamp": self.at,
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
        }
        found = fhir_values.problems(data)
        if found:
            raise InvalidEvents(found, "handoff FHIR Bundle")
        return data

    def _checked(self, i: int, line: PacketLine) -> PacketLine:
        where = f"lines[{i}]"
        if line.flag not in FLAGS:
            raise MarError(f"{where}.flag={line.flag!r}: use one of {', '.join(FLAGS)}")
        try:
            med = listed_medication(line.medication)
        except NotAListLine as exc:
            raise MarError(f"{where}.medication is not a mar list line: {exc}") from None
        if self.catalog.drug(med["drug"]) is None:
            raise MarError(f"{where}.medication.drug={med['drug']!r}: not in the drug catalog")
        return PacketLine(med, line.flag, line.reason, line.started_at, line.last_given_at)

    # --- resources --------------------------------------------------------------------

    def list(self, lines: list[PacketLine], ids: list[str]) -> dict:
        entries = []
        for line, sid in zip(lines, ids):
            code, display = FLAGS[line.flag]
            flag = {"coding": [{"system": LIST_ITEM_FLAG, "code": code, "display": display}]}
            if line.reason:
                flag["text"] = f"{display}: {line.reason}"
            entries.append({"flag": flag, "item": {"reference": f"urn:uuid:{sid}",
                                                   "display": line.medication["drug"]}})
        out = {"resourceType": "List", "id": self.url("list"), "status": "current", "mode": "snapshot",
               "title": self.p.title, "subject": [self.subject] if self.r5 else self.subject,
               "date": self.at, "entry": entries}
        if not entries:
            out["emptyReason"] = {"text": "no medications"}
        return out

    def statement(self, line: PacketLine, sid: str) -> dict:
        med = line.medication
        current = line.flag in CURRENT_FLAGS
        out: dict = {"resourceType": "MedicationStatement", "id": sid}
        if self.r5:
            out["status"] = "recorded"
            out["medication"] = {"concept": self.concept(med["drug"])}
        else:
            out["status"] = "active" if current else "stopped"
            if not current and line.reason:
                out["statusReason"] = [{"text": line.reason}]
            out["medicationCodeableConcept"] = self.concept(med["drug"])
        out["subject"] = self.subject
        period = {}
        if line.started_at:
            period["start"] = line.started_at.isoformat()
        if not current:
            period["end"] = self.at
        if period:
            out["effectivePeriod"] = period
        out["dateAsserted"] = self.at
        if med.get("order_id"):
            out["derivedFrom"] = [{"type": "MedicationRequest",
                                   "identifier": {"system": MAR_ORDER_SYSTEM, "value": med["order_id"]}}]
        if med.get("indication"):
            out["reason" if self.r5 else "reasonCode"] = (
                [{"concept": {"text": med["indication"]}}] if self.r5 else [{"text": med["indication"]}])
        if med.get("note"):
            out["note"] = [{"text": med["note"]}]
        out["dosage"] = self.pca(med, line) if med["dosing"]["form"] == "pca" else [self.dosage(med, line)]
        if self.r5:
            adherence = {"code": {"coding": [{"system": ADHERENCE, "code": "taking" if current else "stopped"}]}}
            if not current and line.reason:
                adherence["reason"] = {"text": line.reason}
            out["adherence"] = adherence
        return out

    def concept(self, name: str) -> dict:
        drug = self.catalog.drug(name)
        if drug and drug.rxnorm:
            coding = {"system": RXNORM, "code": drug.rxnorm, "display": drug.name}
        else:
            coding = {"system": MAR_DRUG_SYSTEM, "code": name, "display": name}
        return {"coding": [coding], "text": name}

    def dosage(self, med: dict, line: PacketLine) -> dict:
        dosing, route = med["dosing"], med["route"]
        out: dict = {"text": self.sig(med, line)}
        if dosing.get("frequency"):
            out["timing"] = self.timing(dosing["frequency"])
        if dosing["form"] == "as_needed":
            if self.r5:
                out["asNeeded"] = True
                if dosing.get("prn_reason"):
                    out["asNeededFor"] = [{"text": dosing["prn_reason"]}]
            elif dosing.get("prn_reason"):
                out["asNeededCodeableConcept"] = {"text": dosing["prn_reason"]}
            else:
                out["asNeededBoolean"] = True
        out["route"] = _route(route, self.catalog)
        if dosing["form"] == "infusion":
            out["doseAndRate"] = [{"rateQuantity": _rate(dosing["rate"])}]
        else:
            out["doseAndRate"] = [{"doseQuantity": _mass(dosing["dose"])}]
        if dosing.get("max_daily"):
            out["maxDosePerPeriod"] = self.most_per(dosing["max_daily"], 1, "d")
        return out

    def pca(self, med: dict, line: PacketLine) -> list[dict]:
        """A PCA as two concurrent Dosage instructions: the demand dose, and the basal rate if any."""
        dosing, route = med["dosing"], _route(med["route"], self.catalog)
        demand: dict = {"sequence": 1, "text": self.sig(med, line), "method": _pca_method("pca-demand")}
        demand["timing"] = {"repeat": {"frequency": 1, "period": dosing["lockout_minutes"], "periodUnit": "min"}}
        demand["asNeeded" if self.r5 else "asNeededBoolean"] = True
        demand["route"] = route
        demand["doseAndRate"] = [{"doseQuantity": _mass(dosing["demand_dose"])}]
        if dosing.get("limit"):
            demand["maxDosePerPeriod"] = self.most_per(dosing["limit"], dosing["limit_hours"], "h")
        out = [demand]
        if dosing.get("basal_rate"):
            out.append({"sequence": 1, "text": f"PCA basal rate {_show(dosing['basal_rate'])} {med['route']} "
                                               "continuous, with the demand doses",
                        "method": _pca_method("pca-basal"), "route": route,
                        "doseAndRate": [{"rateQuantity": _rate(dosing["basal_rate"])}]})
        return out

    def most_per(self, amount: dict, period: int, unit: str):
        """Dosage.maxDosePerPeriod: a list of Ratio in R5, one Ratio in R4B."""
        ratio = {"numerator": _mass(amount), "denominator": {"value": period, "unit": unit, "system": UCUM,
                                                             "code": unit}}
        return [ratio] if self.r5 else ratio

    def timing(self, code: str) -> dict:
        """The exact Timing of a catalog frequency; others by name, which mar reads back."""
        if code in _PER_DAY:
            return {"repeat": {"frequency": _PER_DAY[code], "period": 1, "periodUnit": "d"}}
        if code == "qhs":
            return {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["HS"]}}
        if code == "once":
            return {"repeat": {"count": 1}}
        if code.startswith("q") and code.endswith("h") and code[1:-1].isascii() and code[1:-1].isdigit():
            return {"repeat": {"frequency": 1, "period": int(code[1:-1]), "periodUnit": "h"}}
        return {"code": {"text": code}}

    def sig(self, med: dict, line: PacketLine) -> str:
        dosing = med["dosing"]
        if dosing["form"] == "infusion":
            text = f"{_show(dosing['rate'])} {med['route']} continuous"
        elif dosing["form"] == "pca":
            text = (f"PCA demand dose {_show(dosing['demand_dose'])} {med['route']} as needed, lockout "
                    f"{dosing['lockout_minutes']:g} min")
            if dosing.get("limit"):
                text += f", limit {_show(dosing['limit'])} per {dosing['limit_hours']} h"
            if dosing.get("basal_rate"):
                text += f"; basal rate {_show(dosing['basal_rate'])}"
        else:
            freq = self.catalog.frequency(dosing["frequency"])
            text = f"{_show(dosing['dose'])} {med['route']} {freq.name if freq else dosing['frequency']}"
        if dosing["form"] == "as_needed":
            text += " as needed" + (f" for {dosing['prn_reason']}" if dosing.get("prn_reason") else "")
            if dosing.get("max_daily"):
                text += f", max {_show(dosing['max_daily'])} per day"
        if line.last_given_at:
            text += f"; last given {line.last_given_at.isoformat()}"
        return text

    def issue(self, alert: PacketAlert, n: int, lines: list[PacketLine], ids: list[str]) -> dict:
        if alert.severity not in SEVERITIES:
            raise MarError(f"alerts[{n}].severity={alert.severity!r}: use one of {', '.join(SEVERITIES)}")
        implicated = []
        for drug in alert.drugs:
            hits = [sid for line, sid in zip(lines, ids) if line.medication["drug"] == drug]
            implicated += [{"reference": f"urn:uuid:{sid}", "display": drug} for sid in hits] or [{"display": drug}]
        out = {"resourceType": "DetectedIssue", "id": self.url("alert", n),
               "identifier": [{"system": MAR_ALERT_SYSTEM, "value": alert.alert_id}],
               "status": "final", "severity": alert.severity, "code": {"text": alert.title},
               ("subject" if self.r5 else "patient"): self.subject,
               "identifiedDateTime": (alert.identified_at.isoformat() if alert.identified_at else self.at),
               "detail": alert.detail}
        if implicated:
            out["implicated"] = implicated
        if alert.evidence:
            out["evidence"] = [{"code": [{"text": e}]} for e in alert.evidence]
        return out


def _patient_ref(patient_id: str) -> dict:
    if FHIR_ID.match(patient_id):
        return {"reference": f"Patient/{patient_id}"}
    return {"type": "Patient", "identifier": {"system": MAR_PATIENT_SYSTEM, "value": patient_id}}


def _route(code: str, catalog: Catalog) -> dict:
    name = catalog.routes.get(code, code)
    if code in ROUTE_SNOMED:
        return {"coding": [{"system": SNOMED, "code": ROUTE_SNOMED[code], "display": ROUTE_DISPLAY[code]}],
                "text": name}
    return {"text": code}


def _pca_method(code: str) -> dict:
    display = {"pca-demand": "PCA demand dose", "pca-basal": "PCA basal rate"}[code]
    return {"coding": [{"system": MAR_DOSING_SYSTEM, "code": code, "display": display}],
            "text": f"patient-controlled analgesia: {display[4:]}"}


def _rate(q: dict) -> dict:
    return {"value": q["value"], "unit": q["unit"], "system": UCUM, "code": UCUM_RATE[q["unit"]]}


def _mass(q: dict) -> dict:
    return {"value": q["value"], "unit": q["unit"], "system": UCUM, "code": UCUM_MASS[q["unit"]]}


def _show(q: dict) -> str:
    return f"{q['value']:g} {q['unit']}"

