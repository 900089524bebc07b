"""Prescribed order lines for MME from MedicationRequests (R4B, R5) and from mar list lines."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mar.errors import InvalidEvents
from mar.fhir_mme import PrescribedLine, prescribed_line_from_listed, prescribed_lines_from_bundle

DATA = Path(__file__).parent.parent / "data" / "fhir"
UCUM = "http://unitsofmeasure.org"


def requests(name: str) -> dict:
    b = json.loads((DATA / name).read_text())
    b["entry"] = [e for e in b["entry"] if e["resource"]["resourceType"] in ("Patient", "MedicationRequest")]
    return b


def resource(b: dict, rid: str) -> dict:
    return next(e["resource"] for e in b["entry"] if e["resource"].get("id") == rid)


@pytest.mark.parametrize("name", ["handwritten-r4b.json", "handwritten-r5.json"])
def test_current_requests_become_order_lines(name):
    lines = prescribed_lines_from_bundle(requests(name))
    assert [(l.drug, l.route, l.as_needed, l.dose_mg, l.doses_per_day, l.max_daily_mg, l.rate_mg_per_h, l.daily_mg)
            for l in lines] == [
        ("methadone", "po", False, 10.0, 3, None, None, 30.0),
        ("oxycodone", "po", True, 5.0, 6.0, 30.0, None, 30.0),        # as needed: capped at 30 mg/day
        ("fentanyl", "iv", False, None, None, None, 0.05, pytest.approx(1.2)),
    ]  # the stopped ketamine infusion is not prescribed
    assert lines[0].source == "Bundle.entry[1].resource(MedicationRequest/mr-methadone)"


def test_as_needed_without_cap_counts_every_allowed_dose():
    b = requests("handwritten-r4b.json")
    del resource(b, "mr-oxycodone")["dosageInstruction"][0]["maxDosePerPeriod"]
    oxy = prescribed_lines_from_bundle(b)[1]
    assert (oxy.doses_per_day, oxy.max_daily_mg, oxy.daily_mg) == (6.0, None, 30.0)  # q4h: 6 x 5 mg


def test_dose_range_counts_at_its_high_end():
    b = requests("handwritten-r5.json")
    resource(b, "mr-oxycodone")["dosageInstruction"][0]["doseAndRate"] = [{"doseRange": {
        "low": {"value": 5, "unit": "mg", "system": UCUM, "code": "mg"},
        "high": {"value": 10, "unit": "mg", "system": UCUM, "code": "mg"}}}]
    del resource(b, "mr-oxycodone")["dosageInstruction"][0]["maxDosePerPeriod"]
    oxy = prescribed_lines_from_bundle(b)[1]
    assert (oxy.dose_mg, oxy.dose_range_mg, oxy.daily_mg) == (10.0, (5.0, 10.0), 60.0)


def test_transdermal_patch_by_rate():
    b = requests("handwritten-r5.json")
    fent = resource(b, "mr-fentanyl")["dosageInstruction"][0]
    fent["route"] = {"coding": [{"system": "http://snomed.info/sct", "code": "45890007"}]}
    fent["doseAndRate"][0]["rateQuantity"] = {"value": 25, "unit": "mcg/h", "system": UCUM, "code": "ug/h"}
    fent["timing"] = {"repeat": {"frequency": 1, "period": 72, "periodUnit": "h"}}  # changed every 3 days
    patch = prescribed_lines_from_bundle(b)[2]
    assert (patch.route, patch.patch_rate_mcg_per_h, patch.daily_mg) == ("td", 25.0, None)


def test_tablets_cannot_be_counted():
    b = requests("handwritten-r4b.json")
    resource(b, "mr-methadone")["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {
        "value": 2, "unit": "TAB", "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", "code": "TAB"}
    with pytest.raises(InvalidEvents) as exc:
        prescribed_lines_from_bundle(b)
    assert [(p.field, p.value) for p in exc.value.problems] == [
        ("Bundle.entry[1].resource(MedicationRequest/mr-methadone).dosageInstruction[0].doseAndRate[0].doseQuantity",
         "2 TAB")]


def test_from_mar_list_lines():
    assert prescribed_line_from_listed({"drug": "memantine", "route": "po", "dosing": {
        "form": "scheduled", "dose": {"value": 10, "unit": "mg"}, "frequency": "bid"}}, source="x") == \
        PrescribedLine(drug="memantine", route="po", as_needed=False, source="x", dose_mg=10.0, frequency="bid",
                       doses_per_day=2)
    weight_based = prescribed_line_from_listed({"drug": "ketamine", "route": "iv", "dosing": {
        "form": "infusion", "rate": {"value": 0.1, "unit": "mg/kg/h"}}})
    assert (weight_based.rate_mg_per_h, weight_based.daily_mg) == (None, None)
    pca = prescribed_line_from_listed({"drug": "hydromorphone", "route": "iv", "dosing": {
        "form": "pca", "demand_dose": {"value": 0.2, "unit": "mg"}, "lockout_minutes": 10,
        "basal_rate": {"value": 0.1, "unit": "mg/h"}, "limit": {"value": 1, "unit": "mg"}, "limit_hours": 1}})
    assert (pca.as_needed, pca.dose_mg, pca.doses_per_day, pca.max_daily_mg, pca.rate_mg_per_h) == \
        (True, 0.2, 144.0, 24.0, 0.1)


@pytest.mark.parametrize("version", ["R5", "R4B"])
def test_a_pca_from_fhir_counts_as_the_same_pca_from_a_list(version):
    from datetime import datetime, timezone

    from mar.fhir_out import HandoffPacket, PacketLine, handoff_bundle
    from projections.prescribed_mme import line_text

    listed = {"drug": "hydromorphone", "route": "iv", "dosing": {
        "form": "pca", "demand_dose": {"value": 0.2, "unit": "mg"}, "lockout_minutes": 10,
        "basal_rate": {"value": 0.1, "unit": "mg/h"}, "limit": {"value": 1, "unit": "mg"}, "limit_hours": 1}}
    bundle = handoff_bundle(HandoffPacket("ref-001", datetime(2007, 10, 16, tzinfo=timezone.utc),
                                          [PacketLine(listed, "unchanged")]), version)
    (line,) = prescribed_lines_from_bundle(bundle)
    expected = prescribed_line_from_listed(listed, source=line.source)
    assert line == expected and line.doses_per_day == 144.0 and line.max_daily_mg == 24.0
    assert line_text(line) == "iv PCA demand 0.2 mg, lockout 10 min, basal 0.1 mg/h"
