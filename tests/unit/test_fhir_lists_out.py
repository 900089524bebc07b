"""FHIR medication lists in (reconcile --list) and the handoff Bundle out, and their round trip."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mar.errors import InvalidEvents, MarError
from mar.events import ListedMedication
from mar.fhir_bundle import model_class
from mar.fhir_lists import medication_list_from_bundle, read_medication_list
from mar.fhir_out import HandoffPacket, PacketAlert, PacketLine, flag_for, handoff_bundle

DATA = Path(__file__).parent.parent / "data" / "fhir"
PDT = timezone(timedelta(hours=-7))
AT = datetime(2007, 12, 3, 10, 0, tzinfo=PDT)

METHADONE = {"drug": "methadone", "route": "po", "order_id": "hm_meth:1", "indication": "chronic pain",
             "dosing": {"form": "scheduled", "dose": {"value": 10, "unit": "mg"}, "frequency": "q8h"}}
OXYCODONE = {"drug": "oxycodone", "route": "po",
             "dosing": {"form": "as_needed", "dose": {"value": 5, "unit": "mg"}, "frequency": "q4h",
                        "max_daily": {"value": 30, "unit": "mg"}, "prn_reason": "breakthrough pain"}}
MEMANTINE = {"drug": "memantine", "route": "po", "indication": "opioid-refractory neuropathic pain",
             "note": "started POD 5 for opioid-refractory neuropathic pain; ketamine taper failed without it",
             "dosing": {"form": "scheduled", "dose": {"value": 10, "unit": "mg"}, "frequency": "bid"}}
PATCH = {"drug": "fentanyl", "route": "td", "dosing": {"form": "infusion", "rate": {"value": 25, "unit": "mcg/h"}}}
NAPROXEN = {"drug": "naproxen", "route": "po",
            "dosing": {"form": "scheduled", "dose": {"value": 500, "unit": "mg"}, "frequency": "bid"}}
BEDTIME = {"drug": "clonazepam", "route": "po",
           "dosing": {"form": "scheduled", "dose": {"value": 500, "unit": "mcg"}, "frequency": "qhs"}}
ONCE = {"drug": "ketamine", "route": "po", "dosing": {"form": "scheduled", "dose": {"value": 10, "unit": "mg"},
                                                      "frequency": "once"}}

LINES = [
    PacketLine(METHADONE, "unchanged", started_at=AT - timedelta(days=40), last_given_at=AT - timedelta(hours=2)),
    PacketLine(OXYCODONE, "changed", reason="dose reduced from 10 mg"),
    PacketLine(MEMANTINE, "prescribed"),
    PacketLine(PATCH, "prescribed"),
    PacketLine(BEDTIME, "unchanged"),
    PacketLine(ONCE, "prescribed"),
    PacketLine(NAPROXEN, "ceased", reason="renal function"),
]
ALERTS = [PacketAlert("omission:memantine", "high", "omission",
                      "memantine ordered inpatient is missing from the list that leaves",
                      drugs=("memantine", "lorazepam"), evidence=("ordered POD 5", "given through POD 48"))]


def packet(**kw) -> HandoffPacket:
    return HandoffPacket(**{"patient_id": "ref-001", "at": AT, "lines": LINES, "alerts": ALERTS, **kw})


def normal(line: dict) -> dict:
    return ListedMedication.model_validate(line).model_dump(mode="json", exclude_none=True)


def current() -> list[dict]:
    return [normal(line.medication) for line in LINES if line.flag in ("unchanged", "changed", "prescribed")]


# --- handoff Bundle ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["R5", "R4B"])
def test_handoff_bundle_round_trip(version):
    bundle = handoff_bundle(packet(), version=version)
    model_class(version, "Bundle").model_validate(bundle)  # valid FHIR of that version
    back = read_medication_list(bundle)
    assert back.version == version
    assert back.lines == current()
    assert back.stopped == [{"drug": "naproxen", "reason": "renal function",
                             "source": back.stopped[0]["source"]}]


def test_handoff_bundle_is_json_and_deterministic():
    one = handoff_bundle(packet())
    assert json.loads(json.dumps(one)) == one
    assert handoff_bundle(packet()) == one


def test_handoff_list_flags_and_references():
    bundle = handoff_bundle(packet())
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["List"] + ["MedicationStatement"] * 7 + ["DetectedIssue"]
    lst = bundle["entry"][0]["resource"]
    assert (lst["status"], lst["mode"], lst["subject"]) == ("current", "snapshot", [{"reference": "Patient/ref-001"}])
    flags = [(e["flag"]["coding"][0]["code"], e["flag"].get("text"), e["item"]["display"]) for e in lst["entry"]]
    assert flags == [("01", None, "methadone"), ("02", "Changed: dose reduced from 10 mg", "oxycodone"),
                     ("04", None, "memantine"), ("04", None, "fentanyl"), ("01", None, "clonazepam"),
                     ("04", None, "ketamine"), ("05", "Ceased: renal function", "naproxen")]
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert all(e["item"]["reference"] in urls for e in lst["entry"])


def test_handoff_statement_r5_shape():
    bundle = handoff_bundle(packet())
    methadone = bundle["entry"][1]["resource"]
    assert methadone["medication"]["concept"]["coding"] == [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6813", "display": "methadone"}]
    assert methadone["derivedFrom"] == [{"type": "MedicationRequest",
                                         "identifier": {"system": "urn:mar:order", "value": "hm_meth:1"}}]
    dosage = methadone["dosage"][0]
    assert dosage["text"] == "10 mg po every 8 hours; last given 2007-12-03T08:00:00-07:00"
    assert dosage["timing"] == {"repeat": {"frequency": 1, "period": 8, "periodUnit": "h"}}
    assert dosage["route"]["coding"][0]["code"] == "26643006"
    naproxen = bundle["entry"][7]["resource"]
    assert naproxen["adherence"] == {"code": {"coding": [
        {"system": "http://hl7.org/fhir/CodeSystem/medication-statement-adherence", "code": "stopped"}]},
        "reason": {"text": "renal function"}}
    assert naproxen["effectivePeriod"] == {"end": "2007-12-03T10:00:00-07:00"}


def test_handoff_detected_issue():
    bundle = handoff_bundle(packet(), version="R4B")
    issue = bundle["entry"][-1]["resource"]
    memantine_url = bundle["entry"][3]["fullUrl"]
    assert issue["severity"] == "high" and issue["patient"] == {"reference": "Patient/ref-001"}
    assert issue["identifier"] == [{"system": "urn:mar:alert", "value": "omission:memantine"}]
    assert issue["implicated"] == [{"reference": memantine_url, "display": "memantine"}, {"display": "lorazepam"}]
    assert issue["evidence"] == [{"code": [{"text": "ordered POD 5"}]}, {"code": [{"text": "given through POD 48"}]}]
    assert issue["detail"] == "memantine ordered inpatient is missing from the list that leaves"


def test_patient_id_that_is_not_a_fhir_id_is_an_identifier():
    bundle = handoff_bundle(packet(patient_id="ward_4:ref_001"))
    assert bundle["entry"][1]["resource"]["subject"] == {
        "type": "Patient", "identifier": {"system": "urn:mar:patient", "value": "ward_4:ref_001"}}
    assert read_medication_list(bundle).lines == current()


def test_empty_packet_is_a_valid_empty_list():
    bundle = handoff_bundle(packet(lines=[], alerts=[]))
    assert bundle["entry"][0]["resource"]["emptyReason"] == {"text": "no medications"}
    assert medication_list_from_bundle(bundle) == []


def test_refusals_of_the_writer():
    with pytest.raises(MarError, match=r"lines\[0\].flag='suspended'"):
        handoff_bundle(packet(lines=[PacketLine(METHADONE, "suspended")]))
    with pytest.raises(MarError, match=r"alerts\[0\].severity='critical'"):
        handoff_bundle(packet(alerts=[PacketAlert("a", "critical", "x", "y")]))
    with pytest.raises(MarError, match="unsupported FHIR version 'R4'"):
        handoff_bundle(packet(), version="R4")
    with pytest.raises(MarError, match="medication is not a mar list line"):
        handoff_bundle(packet(lines=[PacketLine({"drug": "methadone"}, "unchanged")]))


def test_flag_for_reconciliation_status():
    assert [flag_for(s) for s in ("continued", "changed", "new", "stopped")] == \
        ["unchanged", "changed", "prescribed", "ceased"]
    with pytest.raises(MarError, match="an omission is an open alert"):
        flag_for("omitted")


# --- reading lists ---------------------------------------------------------------------------


def without_administrations(name: str) -> dict:
    b = json.loads((DATA / name).read_text())
    b["entry"] = [e for e in b["entry"] if e["resource"]["resourceType"] != "MedicationAdministration"]
    return b


@pytest.mark.parametrize("name", ["handwritten-r4b.json", "handwritten-r5.json"])
def test_list_of_requests_and_statements(name):
    result = read_medication_list(without_administrations(name))
    assert [line["drug"] for line in result.lines] == ["methadone", "oxycodone", "fentanyl", "gabapentin"]
    assert result.lines[1] == {"drug": "oxycodone", "route": "po", "dosing": {
        "form": "as_needed", "dose": {"value": 5.0, "unit": "mg"}, "frequency": "q4h",
        "max_daily": {"value": 30.0, "unit": "mg"}, "prn_reason": "breakthrough pain"}}
    assert result.stopped == [{"drug": "ketamine", "reason": "pain controlled",
                               "source": "Bundle.entry[4].resource(MedicationRequest/mr-ketamine)"}]


def test_list_order_follows_the_list_resource():
    bundle = handoff_bundle(packet())
    lst = bundle["entry"][0]["resource"]
    lst["entry"].reverse()
    assert [line["drug"] for line in medication_list_from_bundle(bundle)] == \
        ["ketamine", "clonazepam", "fentanyl", "memantine", "oxycodone", "methadone"]


def test_list_refusals_name_resource_and_path():
    b = without_administrations("handwritten-r5.json")
    b["entry"].append({"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                                    "code": {"text": "weight"}}})
    b["entry"][7 - 2]["resource"]["adherence"]["code"]["coding"][0]["code"] = "on-hold"
    b["entry"][1]["resource"]["dosageInstruction"][0]["route"] = {"coding": [{"system": "http://snomed.info/sct",
                                                                              "code": "372449004"}]}
    with pytest.raises(InvalidEvents) as exc:
        medication_list_from_bundle(b)
    assert [p.field for p in exc.value.problems] == [
        "Bundle.entry[1].resource(MedicationRequest/mr-methadone).dosageInstruction[0].route",
        "Bundle.entry[5].resource(MedicationStatement/ms-gabapentin).adherence",
        "Bundle.entry[6].resource(Observation/o1)",
    ]


def test_list_catalog_checks_name_the_resource():
    b = without_administrations("handwritten-r4b.json")
    b["entry"][1]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 100000
    with pytest.raises(InvalidEvents) as exc:
        medication_list_from_bundle(b)
    (p,) = exc.value.problems
    assert p.field == "Bundle.entry[1].resource(MedicationRequest/mr-methadone) -> dosing.dose"
    assert p.message.startswith("implausible: above the catalog maximum single dose of methadone")


def test_entered_in_error_resources_are_not_on_the_list():
    b = without_administrations("handwritten-r4b.json")
    b["entry"][1]["resource"]["status"] = "entered-in-error"
    assert [line["drug"] for line in medication_list_from_bundle(b)] == ["oxycodone", "fentanyl", "gabapentin"]


# --- a PCA: two concurrent instructions --------------------------------------------------------

UCUM = "http://unitsofmeasure.org"
PCA_LINE = {"drug": "hydromorphone", "route": "iv", "order_id": "pca-1",
            "dosing": {"form": "pca", "demand_dose": {"value": 0.2, "unit": "mg"}, "lockout_minutes": 10,
                       "basal_rate": {"value": 0.5, "unit": "mg/h"}, "limit": {"value": 3, "unit": "mg"},
                       "limit_hours": 4}}
FENTANYL_PCA = {"drug": "fentanyl", "route": "sc",
                "dosing": {"form": "pca", "demand_dose": {"value": 25, "unit": "mcg"}, "lockout_minutes": 7.5}}


def pca_bundle(version: str = "R5") -> dict:
    lines = [PacketLine(PCA_LINE, "unchanged"), PacketLine(FENTANYL_PCA, "prescribed")]
    return handoff_bundle(packet(lines=lines, alerts=[]), version)


@pytest.mark.parametrize("version", ["R5", "R4B"])
def test_a_pca_is_two_concurrent_instructions_that_read_back(version):
    bundle = pca_bundle(version)
    model_class(version, "Bundle").model_validate(bundle)
    demand, basal = bundle["entry"][1]["resource"]["dosage"]
    assert [d["method"]["coding"][0]["code"] for d in (demand, basal)] == ["pca-demand", "pca-basal"]
    assert demand["sequence"] == basal["sequence"] == 1
    assert demand["text"] == "PCA demand dose 0.2 mg iv as needed, lockout 10 min, limit 3 mg per 4 h; basal rate 0.5 mg/h"
    assert demand["timing"] == {"repeat": {"frequency": 1, "period": 10, "periodUnit": "min"}}
    assert demand["asNeeded" if version == "R5" else "asNeededBoolean"] is True
    assert demand["doseAndRate"] == [{"doseQuantity": {"value": 0.2, "unit": "mg", "system": UCUM, "code": "mg"}}]
    limit = demand["maxDosePerPeriod"][0] if version == "R5" else demand["maxDosePerPeriod"]
    assert limit == {"numerator": {"value": 3, "unit": "mg", "system": UCUM, "code": "mg"},
                     "denominator": {"value": 4, "unit": "h", "system": UCUM, "code": "h"}}
    assert basal["doseAndRate"] == [{"rateQuantity": {"value": 0.5, "unit": "mg/h", "system": UCUM, "code": "mg/h"}}]
    assert "timing" not in basal and "asNeeded" not in basal
    assert len(bundle["entry"][2]["resource"]["dosage"]) == 1  # no basal rate, no limit
    assert medication_list_from_bundle(bundle) == [normal(PCA_LINE), normal(FENTANYL_PCA)]


def edit(change) -> dict:
    bundle = pca_bundle()
    change(bundle["entry"][1]["resource"]["dosage"])
    return bundle


PCA_REFUSALS = [
    (lambda d: d[1].pop("method"), "dosage[1].method",
     "a PCA is one instruction with method pca-demand and at most one with pca-basal"),
    (lambda d: d.pop(0), "dosage", "a PCA basal rate without its pca-demand instruction"),
    (lambda d: d[1].update(sequence=2), "dosage", "the instructions of a PCA run together"),
    (lambda d: d[0]["timing"]["repeat"].update(frequency=2), "dosage[0].timing", "a PCA's lockout is its timing"),
    (lambda d: d[0]["maxDosePerPeriod"][0]["denominator"].update(value=2), "dosage[0].maxDosePerPeriod[0]",
     "a PCA has one limit, per 1 or 4 h"),
    (lambda d: d[0].pop("asNeeded"), "dosage[0].asNeeded", "a PCA demand dose is given as needed"),
    (lambda d: d[0].update(maxDosePerAdministration={"value": 1}), "dosage[0].maxDosePerAdministration",
     "Dosage: element not understood"),
    (lambda d: d[1].update(timing=d[0]["timing"]), "dosage[1]", "a PCA basal rate runs continuously"),
    (lambda d: d[1]["doseAndRate"][0].update(rateQuantity=None, doseQuantity=d[0]["doseAndRate"][0]["doseQuantity"]),
     "dosage[1].doseAndRate", "the PCA basal rate and only that is needed here"),
    (lambda d: d[0]["doseAndRate"][0]["doseQuantity"].update(value=200), " -> dosing.demand_dose",
     "implausible: above the catalog maximum single dose of hydromorphone"),
    (lambda d: [x.pop("method") for x in d], "dosage", "mar needs exactly one dosage instruction"),
]


@pytest.mark.parametrize("change, where, message", PCA_REFUSALS)
def test_a_pca_is_read_only_as_mar_writes_it(change, where, message):
    with pytest.raises(InvalidEvents) as caught:
        medication_list_from_bundle(edit(change))
    (problem,) = caught.value.problems
    assert problem.field.endswith(where) and problem.message.startswith(message), problem
