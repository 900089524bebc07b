"""Acceptance on the reference case (fixtures/seed_case.jsonl, shared/case/seed-case.md)."""
from __future__ import annotations

import os

import pytest

from mar.importing import import_file
from mar.store import EventStore
from projections.queries import regimen_at, totals_for
from tests.conftest import FIXTURE

PATIENT = "ref-001"
pytestmark = pytest.mark.skipif(not os.path.exists(FIXTURE), reason="reference fixture not written yet")


@pytest.fixture(scope="module")
def ref_store(tmp_path_factory):
    os.environ.setdefault("MAR_USER", "test.user")
    path = str(tmp_path_factory.mktemp("ref") / "ref.db")
    with EventStore(path) as store:
        import_file(store, "test.user", FIXTURE)
        yield store


def amount(result: dict, date: str, drug: str, route: str | None = None) -> float:
    return sum(x["amount"] for d in result["days"] if d["date"] == date for x in d["drugs"]
               if x["drug"] == drug and (route is None or x["route"] == route))


def day_of(result: dict, date: str) -> dict:
    return next(d for d in result["days"] if d["date"] == date)


def test_daily_iv_hydromorphone_of_the_paper(ref_store):
    result = totals_for(ref_store, PATIENT)
    assert result["timezone"] == "America/Los_Angeles" and result["mme_table"] == "cdc-2022"
    assert amount(result, "2007-10-15", "hydromorphone", "iv") == pytest.approx(1512, abs=1e-6)  # POD 0: 63 mg/h
    assert amount(result, "2007-10-17", "hydromorphone", "iv") == pytest.approx(1512, abs=1e-6)  # POD 2
    assert amount(result, "2007-10-19", "hydromorphone", "iv") == pytest.approx(504, abs=1e-6)  # POD 4: 21 mg/h
    assert amount(result, "2007-10-14", "hydromorphone", "iv") == pytest.approx(168, abs=1e-6)  # POD -1: 7 mg/h


def test_peak_hour_of_hydromorphone_on_pod_1(ref_store):
    result = totals_for(ref_store, PATIENT, "2007-10-16", "2007-10-16", by="hour")
    hours = [(h["hour"], x["amount"]) for h in result["days"] for x in h["drugs"] if x["drug"] == "hydromorphone"]
    peak = max(hours, key=lambda h: h[1])
    assert peak == (13, pytest.approx(333, abs=1e-6))
    assert all("hour" in h and 0 <= h["hour"] <= 23 for h in result["days"])
    # the hours of the day add up to the day
    day = totals_for(ref_store, PATIENT, "2007-10-16", "2007-10-16")
    assert sum(a for _, a in hours) == pytest.approx(amount(day, "2007-10-16", "hydromorphone"), abs=1e-6)


@pytest.mark.parametrize("at, rate, mg_per_h", [
    ("2007-10-17T12:00:00-07:00", 55, 5.005),  # POD 1 start: 55 mcg/kg/h at 91 kg
    ("2007-10-20T12:00:00-07:00", 27.5, 2.5025),  # POD 5
    ("2007-10-21T12:00:00-07:00", 13.8, 1.2558),  # POD 6, the failed taper
    ("2007-10-22T12:00:00-07:00", 55, 5.005),  # POD 7, back up
    ("2007-10-23T12:00:00-07:00", 36.8, 3.3488),  # POD 8, slower taper
])
def test_ketamine_rate_and_its_mg_per_h_at_91_kg(ref_store, at, rate, mg_per_h):
    meds = {m["drug"]: m for m in regimen_at(ref_store, PATIENT, at)["medications"]}
    ket = meds["ketamine"]
    assert (ket["rate"], ket["rate_unit"], ket["weight_kg"]) == (rate, "mcg/kg/h", 91)
    assert ket["rate_mg_per_h"] == pytest.approx(mg_per_h, abs=1e-9)


def test_ketamine_first_day_is_its_rate_times_hours(ref_store):
    # ordered 14:00 on POD 1 at 5.005 mg/h: 10 hours that day
    result = totals_for(ref_store, PATIENT, "2007-10-16", "2007-10-17")
    assert amount(result, "2007-10-16", "ketamine") == pytest.approx(50.05, abs=1e-9)
    assert amount(result, "2007-10-17", "ketamine") == pytest.approx(5.005 * 24, abs=1e-9)


def test_no_ketamine_after_pod_11_and_no_hydromorphone_after_pod_13(ref_store):
    result = totals_for(ref_store, PATIENT, "2007-10-27")
    assert not any(x["drug"] == "ketamine" for d in result["days"] for x in d["drugs"])
    assert amount(totals_for(ref_store, PATIENT), "2007-10-26", "ketamine") > 0  # stopped that morning
    late = totals_for(ref_store, PATIENT, "2007-10-29")
    assert not any(x["drug"] == "hydromorphone" for d in late["days"] for x in d["drugs"])
    after = regimen_at(ref_store, PATIENT, "2007-10-29T12:00:00-07:00")["medications"]
    assert {m["drug"] for m in after} & {"ketamine", "hydromorphone", "ketorolac"} == set()


def per_day(m: dict) -> float:
    return m["dose"] * {"daily": 1, "bid": 2, "tid": 3, "q8h": 3, "qid": 4, "q6h": 4, "q12h": 2}[m["frequency"]]


def test_regimen_on_pod_30(ref_store):
    meds = regimen_at(ref_store, PATIENT, "2007-11-14T12:00:00-08:00")["medications"]
    scheduled = {m["drug"]: per_day(m) for m in meds if not m["as_needed"]}
    assert scheduled == {"memantine": 20, "methadone": 120, "gabapentin": 2100, "naproxen": 1000}
    prn = [(m["drug"], m["dose"], m["unit"], m["frequency"]) for m in meds if m["as_needed"]]
    assert prn == [("oxycodone", 30, "mg", "q4h")]
    mem = next(m for m in meds if m["drug"] == "memantine")
    assert (mem["dose"], mem["unit"], mem["frequency"], mem["status"], mem["source"]) == (10, "mg", "bid", "active", "order")
    assert mem["last_change"]["reason"] and mem["indication"]


def test_regimen_on_pod_55_at_the_nursing_home_has_no_memantine(ref_store):
    result = regimen_at(ref_store, PATIENT, "2007-12-09T12:00:00-08:00")
    meds = result["medications"]
    assert "memantine" not in {m["drug"] for m in meds}
    listed = [m for m in meds if m["source"] == "discharge list"]
    assert listed and all(m["status"] == "active" for m in listed)
    assert {m["drug"] for m in listed} >= {"methadone", "gabapentin", "naproxen"}


def test_regimen_on_pod_80(ref_store):
    meds = regimen_at(ref_store, PATIENT, "2008-01-03T12:00:00-08:00")["medications"]
    scheduled = {m["drug"]: per_day(m) for m in meds if not m["as_needed"]}
    assert scheduled["memantine"] == 20 and scheduled["methadone"] == 200 and scheduled["naproxen"] == 1500
    assert all(m["source"] == "discharge list" for m in meds)  # after the second discharge


def test_nothing_active_after_death(ref_store):
    assert regimen_at(ref_store, PATIENT, "2008-02-04T12:00:00-08:00")["medications"] == []
    assert regimen_at(ref_store, PATIENT, "2008-02-04T04:39:00-08:00")["medications"] != []
    assert totals_for(ref_store, PATIENT, "2008-02-05")["days"] == []


def test_hand_checked_mme_of_two_days(ref_store):
    result = totals_for(ref_store, PATIENT, "2007-10-15", "2007-11-14")
    # POD 0, 2007-10-15: IV hydromorphone 1512 mg x 20 (parenteral, equianalgesic table) = 30240
    #                    + oral methadone 120 mg x 4.7 (CDC 2022) = 564 -> 30804 MME
    pod0 = day_of(result, "2007-10-15")
    assert {x["drug"]: x["mme"] for x in pod0["drugs"] if x["mme"] is not None} == {
        "hydromorphone": 1512 * 20, "methadone": pytest.approx(120 * 4.7)}
    assert pod0["mme"] == pytest.approx(30240 + 564)
    assert {x["drug"] for x in pod0["drugs"] if x["mme"] is None} == {"gabapentin", "ketorolac", "lorazepam"}
    # POD 30, 2007-11-14: oral methadone 120 mg x 4.7 = 564 + oral oxycodone 30 mg x 1.5 = 45 -> 609 MME
    pod30 = day_of(result, "2007-11-14")
    assert pod30["mme"] == pytest.approx(564 + 45)
    # the same POD 0 under CDC 2016: methadone 120 mg/day is above 60 mg -> factor 12 = 1440; 30240 + 1440
    old = totals_for(ref_store, PATIENT, "2007-10-15", "2007-10-15", mme_table="cdc-2016")
    assert old["mme_table"] == "cdc-2016" and old["days"][0]["mme"] == pytest.approx(30240 + 1440)
    # and with NCI's IV hydromorphone 15: 1512 x 15 = 22680 + 564
    nci = totals_for(ref_store, PATIENT, "2007-10-15", "2007-10-15", mme_table="cdc-2022-nci")
    assert nci["days"][0]["mme"] == pytest.approx(22680 + 564)


def test_late_charting_and_correction_in_knowledge_time(ref_store):
    # methadone 40 mg given 14:05 on POD 30, charted 20:05
    def methadone(**kw):
        return amount(totals_for(ref_store, PATIENT, "2007-11-14", "2007-11-14", **kw), "2007-11-14", "methadone")

    assert methadone() == 120
    assert methadone(known_at="2007-11-14T19:00:00-08:00") == 40  # 08:00 charted; 14:05 not yet; 20:00 not given yet
    assert methadone(known_at="2007-11-14T20:06:00-08:00") == 80
    assert methadone(at="2007-11-14T15:00:00-08:00") == 80  # as at 15:00, from all we know now
    # an oxycodone dose charted twice on 2007-11-09 19:27, corrected at 20:37
    def oxycodone(**kw):
        return amount(totals_for(ref_store, PATIENT, "2007-11-09", "2007-11-09", **kw), "2007-11-09", "oxycodone")

    assert oxycodone() == 30
    assert oxycodone(known_at="2007-11-09T20:00:00-08:00") == 60
    assert oxycodone(known_at="2007-11-09T20:40:00-08:00") == 30


def test_tables_and_the_model_agree_on_every_day_and_hour(ref_store):
    from_tables = totals_for(ref_store, PATIENT)
    from_model = totals_for(ref_store, PATIENT, known_at="2030-01-01T00:00:00Z")
    assert from_model["days"] == from_tables["days"]
    hourly_tables = totals_for(ref_store, PATIENT, "2007-10-14", "2007-10-30", by="hour")
    hourly_model = totals_for(ref_store, PATIENT, "2007-10-14", "2007-10-30", by="hour", known_at="2030-01-01T00:00:00Z")
    assert hourly_model["days"] == hourly_tables["days"]
