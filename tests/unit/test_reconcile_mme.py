"""Prescribed MME (projections.prescribed_mme): the CDC calculator's arithmetic, written out
by hand for each case, from mar lines and from FHIR Bundles of MedicationRequests."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from mar.catalog import default_catalog
from mar.errors import InvalidEvents
from projections.mme import load_table
from projections.prescribed_mme import from_bundle, from_items, prescribed_mme
from projections.reconcile.items import Item

CAT = default_catalog()
DATA = Path(__file__).resolve().parents[1] / "data" / "fhir"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
ORAL = {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]}
TRANSDERMAL = {"coding": [{"system": "http://snomed.info/sct", "code": "45890007"}]}


def item(drug, dosing, route="po"):
    return Item(drug, route, dosing, "order")


def sched(v, f, unit="mg"):
    return {"form": "scheduled", "dose": {"value": v, "unit": unit}, "frequency": f}


def prn(v, f, max_daily=None):
    d = {"form": "as_needed", "dose": {"value": v, "unit": "mg"}, "frequency": f}
    if max_daily is not None:
        d["max_daily"] = {"value": max_daily, "unit": "mg"}
    return d


def rate(v, unit):
    return {"form": "infusion", "rate": {"value": v, "unit": unit}}


def mme_of(items, table="cdc-2022", weight=None):
    return prescribed_mme(from_items(items, CAT), load_table(table), CAT, weight, "p-1", None, "test").to_json()


def test_scheduled_dose_times_doses_per_day_times_factor():
    out = mme_of([item("methadone", sched(40, "tid"))])
    # 40 mg x 3 doses/day = 120 mg/day; CDC 2022 methadone 4.7 -> 564
    assert (out["scheduled_mme"], out["as_needed_max_mme"], out["max_mme"]) == (564, 0, 564)
    row = out["lines"][0]
    assert (row["amount_per_day"], row["factor"], row["mme"], row["basis"]) == (120, 4.7, 564, "40 mg x 3 doses/day")
    assert (out["kind"], out["mme_table"], out["mme_table_edition"]) == ("prescribed", "cdc-2022", "2022-11")


def test_as_needed_at_their_maximum_shown_apart():
    out = mme_of([item("methadone", sched(40, "tid")), item("oxycodone", prn(30, "q4h"))])
    # oxycodone 30 mg every 4 h at most: 6 doses/day = 180 mg/day x 1.5 = 270
    assert (out["scheduled_mme"], out["as_needed_max_mme"], out["max_mme"]) == (564, 270, 834)
    assert [r["as_needed"] for r in out["lines"]] == [False, True]


def test_the_daily_maximum_caps_an_as_needed_order_when_lower():
    assert mme_of([item("oxycodone", prn(5, "q4h", max_daily=20))])["as_needed_max_mme"] == 30  # 20 mg x 1.5
    assert mme_of([item("oxycodone", prn(5, "q4h", max_daily=60))])["as_needed_max_mme"] == 45  # 5 x 6 = 30 mg x 1.5


def test_patch_by_its_rate():
    out = mme_of([item("fentanyl", rate(25, "mcg/h"), route="td")])
    # CDC: transdermal fentanyl 2.4 MME per mcg/h -> 25 mcg/h = 60
    assert out["scheduled_mme"] == 60
    assert (out["lines"][0]["amount_unit"], out["lines"][0]["factor_per"]) == ("mcg/h", "mcg/h")


def test_a_patch_written_as_a_dose_is_not_counted():
    out = mme_of([item("fentanyl", sched(25, "daily", unit="mcg"), route="td")])
    assert out["max_mme"] == 0
    assert out["not_counted"][0]["reason"] == "a patch needs its delivery rate in mcg/h, not a dose"


def test_infusions_per_day_and_weight_based_rates_at_the_patients_weight():
    # IV fentanyl 50 mcg/h = 1.2 mg/day x 300 (cdc-2022 parenteral) = 360
    assert mme_of([item("fentanyl", rate(50, "mcg/h"), route="iv")])["scheduled_mme"] == 360
    # IV hydromorphone 0.01 mg/kg/h at 80 kg = 0.8 mg/h = 19.2 mg/day x 20 = 384
    assert mme_of([item("hydromorphone", rate(0.01, "mg/kg/h"), route="iv")], weight=80)["scheduled_mme"] == 384
    out = mme_of([item("hydromorphone", rate(0.01, "mg/kg/h"), route="iv")])
    assert out["not_counted"][0]["reason"] == "weight-based rate 0.01 mg/kg/h and no weight recorded"


def pca(limit=None, hours=None):
    d = {"form": "pca", "demand_dose": {"value": 0.2, "unit": "mg"}, "lockout_minutes": 10,
         "basal_rate": {"value": 1, "unit": "mg/h"}}
    if limit:
        d.update(limit={"value": limit, "unit": "mg"}, limit_hours=hours)
    return item("hydromorphone", d, route="iv")


def test_pca_basal_scheduled_and_demand_at_most():
    # basal 1 mg/h x 24 = 24 mg/day x 20 = 480; demand 0.2 mg every 10 min = 144 x 0.2 = 28.8 mg/day x 20 = 576
    out = mme_of([pca()])
    assert (out["scheduled_mme"], out["as_needed_max_mme"]) == (480, 576)
    # limit 3 mg per hour = 72 mg/day: basal 24 + demand 28.8 stays under it
    assert mme_of([pca(3, 1)])["as_needed_max_mme"] == 576
    # limit 8 mg per 4 h = 48 mg/day: demand at most 48 - 24 = 24 mg/day x 20 = 480
    assert mme_of([pca(8, 4)])["as_needed_max_mme"] == 480


def test_methadone_tiers_of_cdc_2016_follow_the_daily_dose():
    assert mme_of([item("methadone", sched(40, "tid"))], "cdc-2016")["scheduled_mme"] == 1440  # 120 mg x 12
    assert mme_of([item("methadone", sched(10, "bid"))], "cdc-2016")["scheduled_mme"] == 80  # 20 mg x 4
    assert mme_of([item("methadone", sched(20.5, "daily"))], "cdc-2016")["scheduled_mme"] == 164  # 20.5 x 8


def test_opioids_without_a_factor_and_non_opioids_are_named_apart():
    out = mme_of([item("buprenorphine", sched(2, "daily"), route="sl"), item("morphine", sched(10, "q4h"), route="pr"),
                  item("memantine", sched(10, "bid")), item("gabapentin", sched(700, "tid"))])
    assert out["max_mme"] == 0
    reasons = {x["drug"]: x["reason"] for x in out["not_counted"]}
    assert reasons["buprenorphine"].startswith("CDC 2022 gives no MME factor for buprenorphine")
    assert reasons["morphine"] == "no factor for morphine by route pr in cdc-2022 (2022-11)"
    assert out["non_opioids"] == ["gabapentin", "memantine"]


def test_text_says_prescribed_and_names_the_table():
    text = prescribed_mme(from_items([item("methadone", sched(40, "tid"))], CAT), load_table(), CAT, None, "p-1",
                          None, "test").to_text()
    assert "not what was given" in text and "cdc-2022 (2022-11)" in text
    assert "methadone po (40 mg po three times daily): 40 mg x 3 doses/day = 120 mg/day x 4.7 = 564 MME/day" in text


# --- FHIR Bundles of MedicationRequests ----------------------------------------------------------


def request(rid, code, display, dosage, r5=True):
    r = {"resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": "order",
         "subject": {"reference": "Patient/p-1"}, "dosageInstruction": [dosage]}
    concept = {"coding": [{"system": RXNORM, "code": code, "display": display}]}
    if r5:
        r["medication"] = {"concept": concept}
    else:
        r["medicationCodeableConcept"] = concept
    return r


def bundle(resources, r5=True) -> dict:
    return {"resourceType": "Bundle", "type": "collection",
            "meta": {"tag": [{"system": "http://hl7.org/fhir/FHIR-version", "code": "5.0.0" if r5 else "4.3.0"}]},
            "entry": [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": r}
                      for i, r in enumerate(resources, 1)]}


def mg_q(v, unit="mg", code="mg"):
    return {"value": v, "unit": unit, "system": UCUM, "code": code}


def hand_written(r5: bool) -> dict:
    methadone = {"timing": {"repeat": {"frequency": 1, "period": 8, "periodUnit": "h"}}, "route": ORAL,
                 "doseAndRate": [{"doseQuantity": mg_q(10)}]}
    cap = {"numerator": mg_q(30), "denominator": {"value": 1, "unit": "d", "system": UCUM, "code": "d"}}
    oxycodone = {"timing": {"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}}, "route": ORAL,
                 "doseAndRate": [{"doseQuantity": mg_q(5)}], "maxDosePerPeriod": [cap] if r5 else cap}
    oxycodone.update({"asNeeded": True} if r5 else {"asNeededBoolean": True})
    patch = {"route": TRANSDERMAL, "doseAndRate": [{"rateQuantity": mg_q(25, "mcg/h", "ug/h")}]}
    return bundle([request("mr-1", "6813", "methadone", methadone, r5),
                   request("mr-2", "7804", "oxycodone", oxycodone, r5),
                   request("mr-3", "4337", "fentanyl", patch, r5)], r5)


@pytest.mark.parametrize("r5", [True, False], ids=["R5", "R4B"])
def test_a_hand_written_bundle_of_medication_requests(r5):
    out = prescribed_mme(from_bundle(hand_written(r5), CAT), load_table(), CAT, None, "p-1", None, "bundle").to_json()
    # methadone 10 mg every 8 h = 30 mg/day x 4.7 = 141; fentanyl patch 25 mcg/h x 2.4 = 60
    # oxycodone 5 mg every 4 h as needed, at most 30 mg/day = 30 x 1.5 = 45 (apart)
    assert (out["scheduled_mme"], out["as_needed_max_mme"], out["max_mme"]) == (201, 45, 246)
    assert [(r["drug"], r["part"], r["mme"]) for r in out["lines"]] == [
        ("methadone", "scheduled", 141), ("oxycodone", "as needed", 45), ("fentanyl", "patch", 60)]


def hl7_medrx0301() -> dict:
    return json.loads((DATA / "hl7-r4-medicationrequest0301.json").read_text())


def test_the_hl7_example_prescription_is_refused_with_its_paths_not_guessed():
    # HL7's MedicationRequest/medrx0301: oxycodone by a SNOMED CT product code, 1-2 tablets every
    # 4-6 h as needed. mar matches drugs by RxNorm and doses by mass: nothing is guessed.
    r = hl7_medrx0301()
    r["status"] = "active"
    with pytest.raises(InvalidEvents) as err:
        from_bundle(bundle([r], r5=False), CAT)
    text = str(err.value)
    assert "contained[0].code='http://snomed.info/sct|430127000 Oral Form Oxycodone (product)'" in text
    assert "doseRange.high='2 TAB': dose is not a mass" in text


def test_the_hl7_example_with_an_rxnorm_code_and_a_strength():
    # The same example with the two gaps filled as a pharmacist would: oxycodone (RxNorm 7804)
    # and 5 mg tablets, so 5-10 mg every 4-6 h as needed. CDC counts the most allowed: 10 mg
    # every 4 h = 60 mg/day x 1.5 = 90 MME/day, as needed.
    r = copy.deepcopy(hl7_medrx0301())
    r["status"] = "active"
    r["contained"][0]["code"] = {"coding": [{"system": RXNORM, "code": "7804", "display": "oxycodone"}]}
    r["dosageInstruction"][0]["doseAndRate"][0]["doseRange"] = {"low": mg_q(5), "high": mg_q(10)}
    out = prescribed_mme(from_bundle(bundle([r], r5=False), CAT), load_table(), CAT, None, "p-1", None, "b").to_json()
    assert (out["scheduled_mme"], out["as_needed_max_mme"]) == (0, 90)
    assert out["lines"][0]["basis"] == "10 mg x 6 doses/day at most"


@pytest.mark.parametrize("dosing,route", [
    (sched(40, "tid"), "po"), (prn(30, "q4h"), "po"), (prn(5, "q4h", max_daily=20), "po"),
    (rate(25, "mcg/h"), "td"), (rate(0.01, "mg/kg/h"), "iv"), (pca(8, 4).dosing, "iv"), (sched(10, "once"), "po"),
])
def test_mar_lines_read_as_the_fhir_extraction_reads_them(dosing, route):
    """The MME of a mar line and of the same line read by mar.fhir_mme use the same amounts."""
    from mar.fhir_mme import prescribed_line_from_listed
    from projections.prescribed_mme import order_line

    drug = "hydromorphone" if dosing["form"] == "pca" else "fentanyl" if route == "td" else "oxycodone"
    ours = order_line(drug, route, dosing, "o-1", "order", CAT)
    theirs = prescribed_line_from_listed({"drug": drug, "route": route, "dosing": dosing, "order_id": "o-1"}, CAT,
                                         "order")
    for name in ("as_needed", "dose_mg", "doses_per_day", "max_daily_mg", "rate", "rate_mg_per_h", "order_id"):
        assert getattr(ours, name) == getattr(theirs, name), name
