"""Which lists a transition compares, and the reconciliation of small patient stories
(projections.reconcile on stored-form events, no store)."""
from __future__ import annotations

import json

import pytest

from mar.errors import MarError
from projections.reconcile import NoTransition, reconcile, read_list, record_of
from projections.reconcile.source import BadTime, InvalidList
from tests.unit.projection_events import PATIENT, ev, mg, order, registered, scheduled


def prn(value, freq):
    return {"form": "as_needed", "dose": mg(value), "frequency": freq}


def admitted(at, **kw):
    return ev("admitted", at, location="ward 5", **kw)


def line(drug, dosing, route="po", **kw):
    return {"drug": drug, "route": route, "dosing": dosing, **kw}


def discharged(at, lines, decisions=(), **kw):
    return ev("discharged", at, destination="nursing home", medication_list=list(lines),
              decisions=list(decisions), **kw)


def home(at, drug, dosing, route="po"):
    return ev("home_medication_recorded", at, drug=drug, route=route, dosing=dosing)


def stopped(at, order_id, reason):
    return ev("order_discontinued", at, order_id=order_id, reason=reason)


BASE = [
    registered("2007-10-01T08:00:00-07:00"),
    home("2007-10-01T08:10:00-07:00", "methadone", scheduled(40, "tid")),
    home("2007-10-01T08:11:00-07:00", "gabapentin", scheduled(600, "tid")),
    admitted("2007-10-01T09:00:00-07:00", decisions=[{"drug": "methadone", "action": "continue",
                                                      "reason": "home dose"}]),
    order("2007-10-01T10:00:00-07:00", "met-1", "methadone", "po", scheduled(40, "tid")),
    order("2007-10-01T10:01:00-07:00", "gab-1", "gabapentin", "po", scheduled(500, "tid")),
    order("2007-10-03T10:00:00-07:00", "mem-1", "memantine", "po", scheduled(10, "bid"), indication="pain"),
    order("2007-10-03T10:05:00-07:00", "ket-1", "ketorolac", "iv", scheduled(30, "q8h")),
    stopped("2007-10-10T08:00:00-07:00", "ket-1", "replaced by naproxen"),
]
DISCHARGE = discharged("2007-10-10T11:00:00-07:00", [
    line("methadone", scheduled(40, "tid"), order_id="met-1"),
    line("gabapentin", scheduled(500, "tid"), order_id="gab-1"),
])


def statuses(result) -> dict[str, str]:
    return {x.drug: x.status for x in result.lines}


def test_discharge_compares_the_orders_just_before_with_the_list():
    rec = record_of(BASE + [DISCHARGE], PATIENT)
    r = reconcile(rec, "discharge")
    assert statuses(r) == {"memantine": "omitted", "gabapentin": "continued", "methadone": "continued",
                           "ketorolac": "stopped"}
    assert not r.reconciled and [x.drug for x in r.unreconciled] == ["memantine"]
    assert r.lines[0].drug == "memantine"  # lines not reconciled come first
    ket = next(x for x in r.lines if x.drug == "ketorolac")
    assert ket.reason == "replaced by naproxen" and ket.documentation == "documented"


def test_json_shape():
    rec = record_of(BASE + [DISCHARGE], PATIENT)
    out = reconcile(rec, "discharge").to_json()
    assert list(out)[:4] == ["patient_id", "transition", "at", "lines"]
    assert (out["patient_id"], out["transition"], out["at"]) == (PATIENT, "discharge", "2007-10-10T11:00:00-07:00")
    mem = out["lines"][0]
    assert list(mem)[:5] == ["drug", "status", "before", "after", "reason"]
    assert mem["drug"] == "memantine" and mem["status"] == "omitted" and mem["after"] is None
    assert (mem["before"]["dose"], mem["before"]["unit"], mem["before"]["frequency"], mem["before"]["order_id"]) == \
        (10, "mg", "bid", "mem-1")
    assert (mem["discrepancy"], mem["documentation"], mem["reconciled"]) == (["omission"], "undocumented", False)
    assert (out["reconciled"], out["unreconciled"], out["where"]) == (False, 1, "nursing home")


def test_a_decision_on_the_discharge_makes_the_stop_documented():
    dc = discharged("2007-10-10T11:00:00-07:00", DISCHARGE["medication_list"],
                    [{"drug": "memantine", "action": "stop", "reason": "pain resolved"}])
    r = reconcile(record_of(BASE + [dc], PATIENT), "discharge")
    assert r.reconciled and statuses(r)["memantine"] == "stopped"


def test_admission_compares_the_home_list_with_orders_of_the_first_day():
    late = order("2007-10-02T09:30:00-07:00", "late-1", "oxycodone", "po", prn(5, "q4h"))
    r = reconcile(record_of(BASE + [late, DISCHARGE], PATIENT), "admission")
    got = {x.drug: (x.status, x.documentation, x.reason) for x in r.lines}
    assert got == {"gabapentin": ("changed", "undocumented", None),
                   "methadone": ("continued", None, "home dose")}
    assert (r.sides.before_label, r.sides.after_label) == ("home list", "admission orders (first 24 h)")


def test_transfer_without_a_list_carries_every_order_on():
    t = ev("transferred", "2007-10-05T12:00:00-07:00", to_location="ICU")
    r = reconcile(record_of(BASE[:8] + [t], PATIENT), "transfer")
    assert set(statuses(r).values()) == {"continued"} and r.reconciled
    assert r.sides.after_label == "orders carried on (the transfer has no list)"


def test_transfer_with_a_list():
    t = ev("transferred", "2007-10-05T12:00:00-07:00", to_location="rehab",
           medication_list=[line("methadone", scheduled(40, "tid"), order_id="met-1")])
    r = reconcile(record_of(BASE[:8] + [t], PATIENT), "transfer")
    assert statuses(r) == {"gabapentin": "omitted", "memantine": "omitted", "ketorolac": "omitted",
                           "methadone": "continued"}


READMISSION = [
    order("2007-10-12T10:00:00-07:00", "nh-mor-1", "morphine", "iv", prn(4, "q4h")),
    ev("readmitted", "2007-10-20T14:00:00-07:00", location="ward 5", from_facility="nursing home",
       medication_list=[line("methadone", scheduled(40, "tid")), line("morphine", prn(8, "q3h"), route="iv")]),
    order("2007-10-20T15:00:00-07:00", "met-2", "methadone", "po", scheduled(40, "tid")),
    order("2007-10-20T15:01:00-07:00", "mem-2", "memantine", "po", scheduled(10, "bid")),
]


def test_readmission_merges_what_the_patient_came_back_on_and_finds_what_went_missing():
    rec = record_of(BASE + [DISCHARGE] + READMISSION, PATIENT)
    r = reconcile(rec, "readmission")
    got = {x.drug: x for x in r.lines}
    assert statuses(r) == {"gabapentin": "omitted", "morphine": "omitted", "memantine": "new", "methadone": "continued"}
    # The facility list wins over the order charted while away and the discharge list.
    assert got["morphine"].before.source == "facility list"
    assert got["morphine"].before.sources == ["facility list", "order charted while away"]
    assert got["gabapentin"].before.source == "discharge list"
    assert got["methadone"].before.sources == ["facility list", "discharge list"]
    mem = r.to_json()["lines"]
    mem = next(x for x in mem if x["drug"] == "memantine")
    assert mem["missing_since"] == "2007-10-10T11:00:00-07:00"
    assert mem["missing_before"]["order_id"] == "mem-1"
    assert "restarted now" in mem["notes"][-1]


def test_a_medication_still_missing_at_readmission_is_an_omitted_line_of_its_own():
    events = BASE + [DISCHARGE] + READMISSION[:3]  # memantine not ordered again
    r = reconcile(record_of(events, PATIENT), "readmission")
    mem = next(x for x in r.lines if x.drug == "memantine")
    assert (mem.status, mem.before.order_id, mem.after) == ("omitted", "mem-1", None)
    assert mem.missing_since is not None and not mem.reconciled


def test_missing_since_carries_over_a_stay_that_did_not_restart_it():
    second = [discharged("2007-10-25T11:00:00-07:00", [line("methadone", scheduled(40, "tid"), order_id="met-2")]),
              ev("readmitted", "2007-11-01T14:00:00-07:00", location="ward 5"),
              order("2007-11-01T15:00:00-07:00", "mem-3", "memantine", "po", scheduled(10, "bid"))]
    events = BASE + [DISCHARGE] + READMISSION[:3] + second
    r = reconcile(record_of(events, PATIENT), "readmission")
    mem = next(x for x in r.lines if x.drug == "memantine")
    assert mem.status == "new" and r.to_json()["lines"][[x.drug for x in r.lines].index("memantine")][
        "missing_since"] == "2007-10-10T11:00:00-07:00"


def test_the_time_picks_the_latest_transition_at_or_before_it():
    rec = record_of(BASE + [DISCHARGE] + READMISSION, PATIENT)
    assert reconcile(rec).kind == "readmission"
    assert reconcile(rec, at=rec.time("2007-10-15T00:00")).kind == "discharge"  # naive: the patient's zone
    assert reconcile(rec, "admission", rec.time("2007-10-30T00:00:00-07:00")).at == rec.time("2007-10-01T09:00")
    with pytest.raises(NoTransition, match="no discharge recorded for patient p-1 at or before that time"):
        reconcile(rec, "discharge", rec.time("2007-10-05T00:00:00-07:00"))
    with pytest.raises(NoTransition, match="--transition='landing'"):
        reconcile(rec, "landing")
    with pytest.raises(BadTime, match="--at='tomorrow'"):
        rec.time("tomorrow")


# --- proposed lists ---------------------------------------------------------------------------


def write(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_a_proposed_list_is_compared_with_the_orders_active_at_that_time(tmp_path):
    rec = record_of(BASE, PATIENT)
    path = write(tmp_path, "list.json", {
        "medication_list": [line("methadone", scheduled(40, "tid")), line("gabapentin", scheduled(700, "tid"))],
        "decisions": [{"drug": "memantine", "action": "stop", "reason": "no benefit"},
                      {"drug": "gabapentin", "action": "change", "reason": "neuropathic pain"}]})
    r = reconcile(rec, at=rec.time("2007-10-09T12:00"), proposed=read_list(path, rec.chart))
    assert r.proposed and r.kind == "discharge"
    assert statuses(r) == {"gabapentin": "changed", "ketorolac": "omitted", "memantine": "stopped",
                           "methadone": "continued"}
    # ketorolac is still active on 2007-10-09 (stopped on the 10th): leaving it off needs a decision
    assert [x.drug for x in r.unreconciled] == ["ketorolac"]
    gab = next(x for x in r.lines if x.drug == "gabapentin")
    assert (gab.documentation, gab.reason) == ("documented", "neuropathic pain")


def test_a_proposed_list_as_a_plain_array(tmp_path):
    rec = record_of(BASE, PATIENT)
    path = write(tmp_path, "list.json", [line("methadone", scheduled(40, "tid"))])
    r = reconcile(rec, "transfer", rec.time("2007-10-11T12:00"), read_list(path, rec.chart))
    assert statuses(r) == {"methadone": "continued", "gabapentin": "omitted", "memantine": "omitted"}
    assert r.kind == "transfer" and r.sides.before_label == "orders active at that time"


def test_a_bad_proposed_list_names_each_line_field_and_value(tmp_path):
    path = write(tmp_path, "bad.json", [
        line("methadone", scheduled(40, "tid")),
        {"drug": "unobtainium", "route": "po", "dosing": scheduled(1, "tid")},
        {"drug": "memantine", "route": "po", "dosing": {"form": "scheduled", "dose": {"value": 10, "unit": "mg/h"},
                                                       "frequency": "bid"}},
    ])
    with pytest.raises(InvalidList) as err:
        read_list(path)
    text = str(err.value)
    assert "2 problems in the list" in text
    assert "[2].dosing.scheduled.dose.unit='mg/h'" in text
    assert "[1].drug='unobtainium': unknown drug" in text


def test_a_list_file_that_is_not_a_list(tmp_path):
    with pytest.raises(MarError, match="not JSON"):
        read_list(_text(tmp_path, "{oops"))
    with pytest.raises(MarError, match="a list is a JSON array of medication lines"):
        read_list(write(tmp_path, "y.json", {"drugs": []}))


def _text(tmp_path, text) -> str:
    path = tmp_path / "t.json"
    path.write_text(text)
    return str(path)
