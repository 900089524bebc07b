"""Example resources published by HL7 with the FHIR specification (tests/data/fhir/README.md).

None is coded with an RxNorm ingredient of mar's catalog, and their times are dates, so each
is refused: the tests pin the exact problems, which also shows that every element of a real
example is either read, knowingly ignored, or reported (nothing else is complained about).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mar.errors import InvalidEvents
from mar.fhir_bundle import read_bundle
from mar.fhir_in import events_from_bundle
from mar.fhir_lists import read_medication_list
from mar.fhir_mme import prescribed_lines_from_bundle

DATA = Path(__file__).parent.parent / "data" / "fhir"
NO_RXNORM = ("no RxNorm coding (http://www.nlm.nih.gov/research/umls/rxnorm) that names a catalog drug; "
             "other code systems and free text are not matched, never guessed")
NOT_MASS = ("dose is not a mass in mg, ug (mcg) or g; counts of tablets, volumes or units need a strength "
            "mar does not guess")
DATE_ONLY = ("must be a date and time with UTC offset (for example 2007-10-15T14:00:00-07:00); a date alone "
             "or a time without offset is refused, never guessed")


def example(name: str) -> dict:
    resource = json.loads((DATA / name).read_text())
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource}]}


def problems(fn, name: str) -> list[tuple[str, object, str]]:
    with pytest.raises(InvalidEvents) as exc:
        fn(example(name))
    return [(p.field, p.value, p.message) for p in exc.value.problems]


@pytest.mark.parametrize("name, version", [
    ("hl7-r4-medicationrequest0301.json", "R4B"),
    ("hl7-r4-medicationadministration0301.json", "R4B"),
    ("hl7-r4-medicationstatementexample1.json", "R4B"),
    ("hl7-r5-medicationrequest0302.json", "R5"),
    ("hl7-r5-medicationadministration0301.json", "R5"),
    ("hl7-r5-medicationadministration0303.json", "R5"),
])
def test_examples_validate_and_their_version_is_detected(name, version):
    assert read_bundle(example(name)).version == version


def test_medicationrequest0301_r4():
    at = "Bundle.entry[0].resource(MedicationRequest/medrx0301)"
    assert problems(events_from_bundle, "hl7-r4-medicationrequest0301.json") == [
        (f"{at}.contained[0].code", "http://snomed.info/sct|430127000 Oral Form Oxycodone (product)", NO_RXNORM),
        (f"{at}.dosageInstruction[0].doseAndRate[0].doseRange.low", "1 TAB", NOT_MASS),
        (f"{at}.dosageInstruction[0].doseAndRate[0].doseRange.high", "2 TAB", NOT_MASS),
        (f"{at}.authoredOn", "2015-01-15", f"order start (authoredOn) {DATE_ONLY}"),
        (f"{at}.status", "completed", "a stopped order needs the time it stopped: statusChanged (R5), "
                                      "effectiveDosePeriod.end or the dosage timing's boundsPeriod.end"),
    ]


def test_medicationadministration0301_r4():
    at = "Bundle.entry[0].resource(MedicationAdministration/medadmin0301)"
    assert problems(events_from_bundle, "hl7-r4-medicationadministration0301.json") == [
        (f"{at}.request", "medrx0318", "no order medrx0318 for patient pat1 in this Bundle"),
        (f"{at}.contained[0].code",
         "http://hl7.org/fhir/sid/ndc|0069-2587-10 Vancomycin Hydrochloride (VANCOMYCIN HYDROCHLORIDE)", NO_RXNORM),
    ]


def test_medicationstatementexample1_r4():
    at = "Bundle.entry[0].resource(MedicationStatement/example001)"
    assert problems(events_from_bundle, "hl7-r4-medicationstatementexample1.json") == [
        (f"{at}.effectiveDateTime", "2015-01-23", f"time of the statement {DATE_ONLY}"),
        (f"{at}.contained[0].code", "http://hl7.org/fhir/sid/ndc|50580-506-02 Tylenol PM", NO_RXNORM),
        (f"{at}.dosage[0].doseAndRate[0].doseRange.low", "1 TAB", NOT_MASS),
        (f"{at}.dosage[0].doseAndRate[0].doseRange.high", "2 TAB", NOT_MASS),
    ]


def test_medicationrequest0302_r5():
    at = "Bundle.entry[0].resource(MedicationRequest/medrx0302)"
    assert problems(events_from_bundle, "hl7-r5-medicationrequest0302.json") == [
        (f"{at}.contained[0].code", "http://snomed.info/sct|324252006 Azithromycin 250mg capsule (product)", NO_RXNORM),
        (f"{at}.dosageInstruction", 2, "mar needs exactly one dosage instruction (several, as in a taper, "
                                       "are separate orders)"),
        (f"{at}.authoredOn", "2015-01-15", f"order start (authoredOn) {DATE_ONLY}"),
    ]


def test_medicationadministration0301_r5():
    at = "Bundle.entry[0].resource(MedicationAdministration/medadmin0301)"
    assert problems(events_from_bundle, "hl7-r5-medicationadministration0301.json") == [
        (f"{at}.request", "medrx0318", "no order medrx0318 for patient pat1 in this Bundle"),
        (f"{at}.contained[0].code",
         "http://hl7.org/fhir/sid/ndc|0409-6531-02 Vancomycin Hydrochloride (VANCOMYCIN HYDROCHLORIDE)", NO_RXNORM),
    ]


def test_medicationadministration0303_r5_entered_in_error_becomes_a_correction():
    # the erroneous administration needs no drug mapping: it names what it corrects
    assert events_from_bundle(example("hl7-r5-medicationadministration0303.json")) == [
        (0, {"type": "entered_in_error", "patient_id": "pat1", "effective_at": "2015-01-15T04:30:00+01:00",
             "idempotency_key": "fhir:MedicationAdministration/medadmin0303:entered-in-error",
             "target_event_id": "fhir:MedicationAdministration/medadmin0303:given",
             "reason": "MedicationAdministration status entered-in-error in the source system"})]


def test_examples_as_medication_lists():
    at = "Bundle.entry[0].resource(MedicationStatement/example001)"
    assert problems(read_medication_list, "hl7-r4-medicationstatementexample1.json") == [
        (f"{at}.contained[0].code", "http://hl7.org/fhir/sid/ndc|50580-506-02 Tylenol PM", NO_RXNORM),
        (f"{at}.dosage[0].doseAndRate[0].doseRange.low", "1 TAB", NOT_MASS),
        (f"{at}.dosage[0].doseAndRate[0].doseRange.high", "2 TAB", NOT_MASS),
    ]
    # medrx0301 is completed: a stopped line (its drug still has to be known)
    assert [f for f, _, _ in problems(read_medication_list, "hl7-r4-medicationrequest0301.json")] == [
        "Bundle.entry[0].resource(MedicationRequest/medrx0301).contained[0].code"]


def test_examples_for_prescribed_mme():
    at = "Bundle.entry[0].resource(MedicationRequest/medrx0302)"
    assert [f for f, _, _ in problems(prescribed_lines_from_bundle, "hl7-r5-medicationrequest0302.json")] == [
        f"{at}.contained[0].code", f"{at}.dosageInstruction"]
