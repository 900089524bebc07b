"""FHIR Bundle -> mar events: hand-written R4B and R5 Bundles, every refusal by resource and path."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from mar.errors import InvalidEvents, MarError
from mar.fhir_bundle import read_bundle
from mar.fhir_in import events_from_bundle

DATA = Path(__file__).parent.parent / "data" / "fhir"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def bundle(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def resource(b: dict, rid: str) -> dict:
    return next(e["resource"] for e in b["entry"] if e["resource"].get("id") == rid)


def problems(source, **kw) -> list[tuple[str, object, str]]:
    with pytest.raises(InvalidEvents) as exc:
        events_from_bundle(source, **kw)
    return [(p.field, p.value, p.message) for p in exc.value.problems]


def fields(source, **kw) -> list[str]:
    return [f for f, _, _ in problems(source, **kw)]


MR = "Bundle.entry[1].resource(MedicationRequest/mr-methadone)"
OXY = "Bundle.entry[2].resource(MedicationRequest/mr-oxycodone)"

EXPECTED = [
    (1, {"type": "medication_ordered", "patient_id": "ref-001", "effective_at": "2007-10-16T09:00:00-07:00",
         "idempotency_key": "fhir:MedicationRequest/mr-methadone:ordered", "order_id": "mr-methadone",
         "drug": "methadone", "route": "po",
         "dosing": {"form": "scheduled", "dose": {"value": 10, "unit": "mg"}, "frequency": "q8h"},
         "prescriber": "Dr. A. Patel", "indication": "chronic pain",
         "recorded_at": "2007-10-16T09:00:00-07:00", "note": "10 mg by mouth every 8 hours"}),
    (2, {"type": "medication_ordered", "patient_id": "ref-001", "effective_at": "2007-10-16T09:05:00-07:00",
         "idempotency_key": "fhir:MedicationRequest/mr-oxycodone:ordered", "order_id": "mr-oxycodone",
         "drug": "oxycodone", "route": "po",
         "dosing": {"form": "as_needed", "dose": {"value": 5, "unit": "mg"}, "frequency": "q4h",
                    "max_daily": {"value": 30, "unit": "mg"}, "prn_reason": "breakthrough pain"},
         "prescriber": "Dr. A. Patel", "recorded_at": "2007-10-16T09:05:00-07:00"}),
    (3, {"type": "medication_ordered", "patient_id": "ref-001", "effective_at": "2007-10-16T10:00:00-07:00",
         "idempotency_key": "fhir:MedicationRequest/mr-fentanyl:ordered", "order_id": "mr-fentanyl",
         "drug": "fentanyl", "route": "iv", "dosing": {"form": "infusion", "rate": {"value": 50, "unit": "mcg/h"}},
         "prescriber": "Dr. B. Chen", "recorded_at": "2007-10-16T10:00:00-07:00"}),
    (4, {"type": "medication_ordered", "patient_id": "ref-001", "effective_at": "2007-10-16T08:00:00-07:00",
         "idempotency_key": "fhir:MedicationRequest/mr-ketamine:ordered", "order_id": "mr-ketamine",
         "drug": "ketamine", "route": "iv", "dosing": {"form": "infusion", "rate": {"value": 5.0, "unit": "mg/h"}},
         "prescriber": "Dr. B. Chen", "recorded_at": "2007-10-16T08:00:00-07:00"}),
    (7, {"type": "home_medication_recorded", "patient_id": "ref-001", "effective_at": "2007-10-15T12:00:00-07:00",
         "idempotency_key": "fhir:MedicationStatement/ms-gabapentin:recorded", "drug": "gabapentin", "route": "po",
         "dosing": {"form": "scheduled", "dose": {"value": 300, "unit": "mg"}, "frequency": "tid"},
         "indication": "neuropathic pain", "source": "patient", "recorded_at": "2007-10-15T12:00:00-07:00"}),
    (4, {"type": "order_discontinued", "patient_id": "ref-001", "effective_at": "2007-10-16T16:00:00-07:00",
         "idempotency_key": "fhir:MedicationRequest/mr-ketamine:discontinued", "order_id": "mr-ketamine",
         "reason": "pain controlled"}),
    (5, {"type": "dose_given", "patient_id": "ref-001", "effective_at": "2007-10-16T13:10:00-07:00",
         "idempotency_key": "fhir:MedicationAdministration/ma-oxycodone-1:given", "order_id": "mr-oxycodone",
         "dose": {"value": 5, "unit": "mg"}, "route": "po", "kind": "as_needed", "note": "given by RN Lee"}),
    (6, {"type": "infusion_rate_changed", "patient_id": "ref-001", "effective_at": "2007-10-16T14:00:00-07:00",
         "idempotency_key": "fhir:MedicationAdministration/ma-fentanyl-rate:given", "order_id": "mr-fentanyl",
         "rate": {"value": 75, "unit": "mcg/h"}}),
]


# --- the hand-written Bundles ----------------------------------------------------------------


def test_r4b_bundle_maps_to_exact_events():
    assert events_from_bundle(DATA / "handwritten-r4b.json") == EXPECTED


def test_r5_bundle_with_the_same_content_maps_to_the_same_events():
    assert events_from_bundle(DATA / "handwritten-r5.json") == EXPECTED


def test_version_is_told_by_shape():
    assert read_bundle(DATA / "handwritten-r4b.json").version == "R4B"
    assert read_bundle(DATA / "handwritten-r5.json").version == "R5"


def test_version_tag_in_meta_decides():
    b = bundle("handwritten-r5.json")
    b["meta"] = {"tag": [{"system": "http://hl7.org/fhir/FHIR-version", "code": "4.3.0"}]}
    found = problems(b)
    assert (f"{MR}.medication", {"concept": {"coding": [{"system": RXNORM, "code": "6813", "display": "methadone"}]}},
            "not an element of FHIR R4B here (FHIR R4B validation)") in found


def test_unsupported_version_tag_is_refused():
    b = bundle("handwritten-r5.json")
    b["meta"] = {"tag": [{"system": "http://hl7.org/fhir/FHIR-version", "code": "4.0.1"}]}
    assert problems(b) == [("Bundle.meta.tag[0].code", "4.0.1",
                            "unsupported FHIR version; mar reads 4.3.x (R4B) and 5.0.x (R5)")]


def test_version_option_forces_validation_as_that_version():
    found = problems(DATA / "handwritten-r4b.json", version="R5")
    assert (f"{MR}.medicationCodeableConcept" in [f for f, _, _ in found])
    assert (f"{MR}.medication", None, "required in FHIR R5 (FHIR R5 validation)") in found


def test_unknown_version_option_is_an_error():
    with pytest.raises(MarError, match="unsupported FHIR version 'R4'"):
        events_from_bundle(DATA / "handwritten-r4b.json", version="R4")


def test_patient_id_option_replaces_the_subject():
    events = events_from_bundle(DATA / "handwritten-r4b.json", patient_id="other-7")
    assert {e["patient_id"] for _, e in events} == {"other-7"}


def test_patient_id_option_refuses_a_bundle_about_several_patients():
    b = bundle("handwritten-r4b.json")
    resource(b, "ms-gabapentin")["subject"] = {"reference": "Patient/someone-else"}
    assert problems(b, patient_id="x")[0][0] == "Bundle.entry"


def test_subject_by_fullurl_of_a_patient_entry():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["subject"] = {"reference": "urn:uuid:7f1c2b1e-0000-4000-8000-000000000001"}
    assert dict(events_from_bundle(b))[1]["patient_id"] == "ref-001"


def test_entered_in_error_request_corrects_the_order_imported_before():
    b = bundle("handwritten-r5.json")
    r = resource(b, "mr-methadone")
    r["status"] = "entered-in-error"
    r["statusChanged"] = "2007-10-16T11:00:00-07:00"
    r["statusReason"] = {"text": "wrong patient"}
    events = [e for _, e in events_from_bundle(b) if e.get("target_event_id")]
    assert events == [{"type": "entered_in_error", "patient_id": "ref-001",
                       "effective_at": "2007-10-16T11:00:00-07:00",
                       "idempotency_key": "fhir:MedicationRequest/mr-methadone:entered-in-error",
                       "target_event_id": "fhir:MedicationRequest/mr-methadone:ordered",
                       "reason": "wrong patient"}]


def test_entered_in_error_administration_corrects_the_dose():
    b = bundle("handwritten-r4b.json")
    resource(b, "ma-oxycodone-1")["status"] = "entered-in-error"
    (_, event), = [(i, e) for i, e in events_from_bundle(b) if e["type"] == "entered_in_error"]
    assert event["target_event_id"] == "fhir:MedicationAdministration/ma-oxycodone-1:given"
    assert event["reason"] == "MedicationAdministration status entered-in-error in the source system"


def test_dose_against_an_infusion_order_is_a_bolus_and_scheduled_order_scheduled():
    b = bundle("handwritten-r4b.json")
    ma = resource(b, "ma-fentanyl-rate")
    ma["status"] = "completed"
    ma["dosage"] = {"dose": {"value": 25, "unit": "mcg", "system": "http://unitsofmeasure.org", "code": "ug"}}
    admin = dict(events_from_bundle(b))[6]
    assert (admin["type"], admin["kind"], admin["dose"], admin["route"]) == \
        ("dose_given", "bolus", {"value": 25, "unit": "mcg"}, "iv")


def test_timing_forms_map_to_exact_catalog_frequencies():
    cases = [
        ({"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}, "bid"),
        ({"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["HS"]}}, "qhs"),
        ({"repeat": {"timeOfDay": ["08:00:00", "14:00:00", "20:00:00"]}}, "tid"),
        ({"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}}, "q12h"),
        ({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": "QID"}]}}, "qid"),
        ({"code": {"text": "twice daily"}}, "bid"),
        ({"repeat": {"count": 1}}, "once"),
    ]
    for timing, code in cases:
        b = bundle("handwritten-r4b.json")
        resource(b, "mr-methadone")["dosageInstruction"][0]["timing"] = timing
        assert dict(events_from_bundle(b))[1]["dosing"]["frequency"] == code, timing


# --- refusals, each by resource and FHIR path -----------------------------------------------


def test_rxnorm_code_outside_the_catalog_whose_display_names_no_drug():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["medicationCodeableConcept"]["coding"][0].update(code="197361", display="Amlodipine 5 MG Oral Tablet")
    assert problems(b) == [(f"{MR}.medicationCodeableConcept.coding[0].code", "197361 Amlodipine 5 MG Oral Tablet",
                            "RxNorm code not an ingredient code in the drug catalog (edition 2026.1) and its "
                            "display names no catalog drug")]


def test_rxnorm_display_naming_two_catalog_drugs_is_refused():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["medicationCodeableConcept"]["coding"][0].update(
        code="1049635", display="Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet")
    (field, value, message), = problems(b)
    assert field == f"{MR}.medicationCodeableConcept.coding[0].code"
    assert message.endswith("its display names 2 catalog drugs (acetaminophen, oxycodone); mar records one drug per line")


def test_other_code_systems_are_not_matched():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["medicationCodeableConcept"] = {
        "coding": [{"system": "http://snomed.info/sct", "code": "387286002", "display": "Methadone"}], "text": "methadone"}
    assert problems(b) == [(f"{MR}.medicationCodeableConcept", "http://snomed.info/sct|387286002 Methadone",
                            "no RxNorm coding (http://www.nlm.nih.gov/research/umls/rxnorm) that names a catalog "
                            "drug; other code systems and free text are not matched, never guessed")]


def test_dose_in_tablets_is_refused():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {
        "value": 1, "unit": "TAB", "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", "code": "TAB"}
    assert fields(b) == [f"{MR}.dosageInstruction[0].doseAndRate[0].doseQuantity"]


def test_timing_without_a_catalog_equivalent_is_refused():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["dosageInstruction"][0]["timing"] = {"repeat": {"frequency": 5, "period": 1, "periodUnit": "d"}}
    (field, value, message), = problems(b)
    assert (field, value) == (f"{MR}.dosageInstruction[0].timing.repeat", "frequency=5, period=1, periodUnit=d")
    assert message.startswith("no exact catalog frequency for this timing")


def test_frequency_range_on_a_scheduled_dose_is_refused_but_as_needed_takes_the_shortest_interval():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["dosageInstruction"][0]["timing"]["repeat"]["periodMax"] = 12
    assert fields(b) == [f"{MR}.dosageInstruction[0].timing.repeat"]
    # the PRN oxycodone (every 4 to 6 h) is q4h in EXPECTED


def test_dayofweek_and_event_timings_are_refused():
    b = bundle("handwritten-r4b.json")
    timing = resource(b, "mr-methadone")["dosageInstruction"][0]["timing"]
    timing["repeat"]["dayOfWeek"] = ["mon"]
    timing["event"] = ["2007-10-16T09:00:00-07:00"]
    assert set(fields(b)) == {f"{MR}.dosageInstruction[0].timing.event",
                              f"{MR}.dosageInstruction[0].timing.repeat.dayOfWeek"}


def test_missing_dose_is_refused():
    b = bundle("handwritten-r4b.json")
    del resource(b, "mr-methadone")["dosageInstruction"][0]["doseAndRate"]
    assert problems(b) == [(f"{MR}.dosageInstruction[0].doseAndRate", None, "no dose or rate; mar needs the amount")]


def test_missing_route_is_refused():
    b = bundle("handwritten-r4b.json")
    del resource(b, "mr-methadone")["dosageInstruction"][0]["route"]
    assert problems(b) == [(f"{MR}.dosageInstruction[0].route", None, "no route; mar needs it for every order")]


def test_dose_range_is_refused_for_an_order():
    b = bundle("handwritten-r4b.json")
    d = resource(b, "mr-oxycodone")["dosageInstruction"][0]
    d["doseAndRate"] = [{"doseRange": {"low": {"value": 5, "code": "mg", "system": "http://unitsofmeasure.org"},
                                       "high": {"value": 10, "code": "mg", "system": "http://unitsofmeasure.org"}}}]
    assert problems(b) == [(f"{OXY}.dosageInstruction[0].doseAndRate", "5-10 mg",
                            "a dose range is not one dose; mar orders need the dose")]


def test_max_dose_per_period_other_than_a_day_is_refused():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-oxycodone")["dosageInstruction"][0]["maxDosePerPeriod"]["denominator"] = {
        "value": 4, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}
    assert problems(b) == [(f"{OXY}.dosageInstruction[0].maxDosePerPeriod.denominator", "4 h",
                            "mar records a maximum per day only (denominator 1 d or 24 h)")]


def test_modifier_extension_is_refused_where_it_is():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["dosageInstruction"][0]["modifierExtension"] = [
        {"url": "http://example.org/only-if-awake", "valueBoolean": True}]
    assert problems(b) == [(f"{MR}.dosageInstruction[0].modifierExtension", "http://example.org/only-if-awake",
                            "modifier extension not understood by mar: it may change the meaning, so the "
                            "resource is refused")]


def test_plain_extension_is_ignored():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["extension"] = [{"url": "http://example.org/ward", "valueString": "4B"}]
    assert events_from_bundle(b) == EXPECTED


def test_element_not_understood_is_refused():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["implicitRules"] = "http://example.org/rules"
    resource(b, "mr-methadone")["dosageInstruction"][0]["maxDosePerLifetime"] = {"value": 1000, "unit": "mg"}
    found = problems(b)
    assert [f for f, _, _ in found] == [f"{MR}.implicitRules", f"{MR}.dosageInstruction[0].maxDosePerLifetime"]
    assert found[0][2] == ("MedicationRequest: element not understood by mar; the resource is refused rather "
                           "than read without it")
    assert found[1][2] == "mar records a daily maximum only (maxDosePerPeriod per 1 d)"


def test_date_without_time_is_refused_never_guessed():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["authoredOn"] = "2007-10-16"
    (field, value, message), = problems(b)
    assert (field, value) == (f"{MR}.authoredOn", "2007-10-16")
    assert "a date alone or a time without offset is refused, never guessed" in message


def test_proposal_and_do_not_perform_are_not_orders():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone").update(intent="proposal", doNotPerform=True)
    assert fields(b) == [f"{MR}.intent", f"{MR}.doNotPerform"]


def test_stopped_order_without_a_stop_time_is_refused():
    b = bundle("handwritten-r4b.json")
    del resource(b, "mr-ketamine")["dosageInstruction"][0]["timing"]
    assert problems(b)[0][:2] == ("Bundle.entry[4].resource(MedicationRequest/mr-ketamine).status", "stopped")


def test_active_order_with_a_planned_end_is_refused():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-ketamine")["status"] = "active"
    assert fields(b) == ["Bundle.entry[4].resource(MedicationRequest/mr-ketamine)"]


def test_subject_that_is_not_a_patient():
    b = bundle("handwritten-r4b.json")
    resource(b, "mr-methadone")["subject"] = {"reference": "Group/ward-4"}
    assert problems(b)[0][:2] == (f"{MR}.subject", "Group/ward-4")


def test_administration_of_an_order_nowhere_known():
    b = bundle("handwritten-r4b.json")
    resource(b, "ma-oxycodone-1")["request"] = {"reference": "MedicationRequest/mr-elsewhere"}
    assert problems(b) == [("Bundle.entry[5].resource(MedicationAdministration/ma-oxycodone-1).request",
                            "mr-elsewhere", "no order mr-elsewhere for patient ref-001 in this Bundle")]


def test_administration_of_another_drug_than_its_order():
    b = bundle("handwritten-r4b.json")
    resource(b, "ma-oxycodone-1")["medicationCodeableConcept"]["coding"][0]["code"] = "7052"
    assert problems(b) == [("Bundle.entry[5].resource(MedicationAdministration/ma-oxycodone-1)", "morphine",
                            "the order mr-oxycodone is for oxycodone")]


def test_dose_and_rate_on_an_infusion_administration_is_ambiguous():
    b = bundle("handwritten-r4b.json")
    resource(b, "ma-fentanyl-rate")["dosage"]["dose"] = {"value": 25, "code": "ug", "system": "http://unitsofmeasure.org"}
    assert fields(b) == ["Bundle.entry[6].resource(MedicationAdministration/ma-fentanyl-rate).dosage"]


def test_not_done_administration_is_refused():
    b = bundle("handwritten-r4b.json")
    resource(b, "ma-oxycodone-1")["status"] = "not-done"
    assert fields(b) == ["Bundle.entry[5].resource(MedicationAdministration/ma-oxycodone-1).status"]


def test_statement_not_taken_is_not_a_home_medication():
    b = bundle("handwritten-r5.json")
    resource(b, "ms-gabapentin")["adherence"]["code"]["coding"][0]["code"] = "not-taking"
    assert problems(b)[0][:2] == ("Bundle.entry[7].resource(MedicationStatement/ms-gabapentin).adherence.code",
                                  "not-taking")


def test_resource_types_not_imported_and_deletes_are_refused():
    b = bundle("handwritten-r4b.json")
    b["entry"].append({"resource": {"resourceType": "Encounter", "id": "enc-1", "status": "finished",
                                    "class": {"code": "IMP"}}})
    b["entry"][1]["request"] = {"method": "DELETE", "url": "MedicationRequest/mr-methadone"}
    b["entry"].append({"request": {"method": "DELETE", "url": "MedicationRequest/mr-oxycodone"}})
    b["entry"].append({"fullUrl": "urn:uuid:0b1d3c5e-0000-4000-8000-000000000099"})
    assert problems(b) == [
        ("Bundle.entry[1].request.method", "DELETE", "mar records facts and corrections, never deletes or "
         "patches; send the resource with status entered-in-error"),
        ("Bundle.entry[8].resource(Encounter/enc-1)", "Encounter", "resource type not imported by mar (imported: "
         "MedicationRequest, MedicationAdministration, MedicationStatement; accepted as context: Patient, "
         "Medication, Practitioner, PractitionerRole, Organization)"),
        ("Bundle.entry[9].request.method", "DELETE", "mar records facts and corrections, never deletes or "
         "patches; send the resource with status entered-in-error"),
        ("Bundle.entry[10]", "urn:uuid:0b1d3c5e-0000-4000-8000-000000000099",
         "an entry without a resource: nothing to read"),
    ]


def test_resource_without_id_is_refused():
    b = bundle("handwritten-r4b.json")
    del resource(b, "mr-methadone")["id"]
    assert fields(b) == ["Bundle.entry[1].resource(MedicationRequest).id"]


def test_every_problem_is_reported_at_once_and_names_resource_and_path():
    b = bundle("handwritten-r5.json")
    resource(b, "mr-methadone")["authoredOn"] = "2007-10-16"
    resource(b, "mr-oxycodone")["dosageInstruction"][0]["route"] = {"text": "intrathecal"}
    resource(b, "ms-gabapentin")["medication"]["concept"]["coding"][0].update(code="99999999", display="a product")
    found = problems(b)
    assert [f for f, _, _ in found] == [
        f"{MR}.authoredOn",
        f"{OXY}.dosageInstruction[0].route",
        "Bundle.entry[7].resource(MedicationStatement/ms-gabapentin).medication.concept.coding[0].code",
    ]
    assert all(f.startswith("Bundle.entry[") and ".resource(" in f for f, _, _ in found)


def test_fhir_validation_errors_carry_the_path_and_version():
    b = bundle("handwritten-r5.json")
    resource(b, "mr-methadone")["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = "often"
    assert problems(b, version="R5") == [
        (f"{MR}.dosageInstruction[0].timing.repeat.frequency", "often",
         "Input should be a valid integer, unable to parse string as an integer (FHIR R5 validation)")]


def test_unknown_resource_type_is_a_validation_problem():
    b = bundle("handwritten-r5.json")
    b["entry"].append({"resource": {"resourceType": "Prescription", "id": "x"}})
    assert ("Bundle.entry[8].resource.resourceType", "Prescription", "not a FHIR R5 resource type") in problems(b)


def test_not_json_and_not_a_bundle(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    (field, value, message), = problems(bad)
    assert (field, value) == ("Bundle", str(bad)) and message.startswith("not valid JSON")
    assert problems({"resourceType": "MedicationRequest"}) == [
        ("Bundle.resourceType", "MedicationRequest", "expected a FHIR Bundle")]


def test_input_is_not_modified():
    b = bundle("handwritten-r4b.json")
    before = copy.deepcopy(b)
    events_from_bundle(b)
    assert b == before


def test_patch_timing_is_when_it_is_changed_not_a_dose_frequency():
    b = bundle("handwritten-r5.json")
    d = resource(b, "mr-fentanyl")["dosageInstruction"][0]
    d["route"] = {"coding": [{"system": "http://snomed.info/sct", "code": "45890007"}]}
    d["doseAndRate"][0]["rateQuantity"]["value"] = 25
    d["timing"] = {"repeat": {"frequency": 1, "period": 72, "periodUnit": "h"}}
    order = dict(events_from_bundle(b))[3]
    assert (order["route"], order["dosing"], order["note"]) == (
        "td", {"form": "infusion", "rate": {"value": 25, "unit": "mcg/h"}},
        "patch changed per timing: frequency=1, period=72, periodUnit=h")


@pytest.mark.parametrize("name", ["handwritten-r4b.json", "handwritten-r5.json"])
def test_a_pca_order_as_mar_writes_it_is_imported_as_a_pca(name):
    from datetime import datetime, timezone

    from mar.fhir_out import HandoffPacket, PacketLine, handoff_bundle

    dosing = {"form": "pca", "demand_dose": {"value": 25, "unit": "mcg"}, "lockout_minutes": 8,
              "basal_rate": {"value": 10, "unit": "mcg/h"}, "limit": {"value": 200, "unit": "mcg"}, "limit_hours": 1}
    version = "R4B" if "r4b" in name else "R5"
    written = handoff_bundle(HandoffPacket("ref-001", datetime(2007, 10, 16, tzinfo=timezone.utc), [
        PacketLine({"drug": "fentanyl", "route": "iv", "dosing": dosing}, "unchanged")]), version)
    b = bundle(name)
    b["entry"] = [e for e in b["entry"] if e["resource"]["resourceType"] != "MedicationAdministration"]
    resource(b, "mr-fentanyl")["dosageInstruction"] = written["entry"][1]["resource"]["dosage"]
    ordered = next(e for _, e in events_from_bundle(b) if e.get("order_id") == "mr-fentanyl")
    assert ordered["dosing"] == dosing
    assert ordered["note"].startswith("PCA demand dose 25 mcg iv as needed, lockout 8 min")
