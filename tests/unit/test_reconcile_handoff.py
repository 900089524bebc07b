"""The handoff packet (projections.handoff) on small patient stories: which list, last
doses, why a medication matters, changes, tapers, alerts first, MME kept apart, formats."""
from __future__ import annotations

import json

from mar.fhir_lists import medication_list_from_bundle
from projections.handoff import build_packet, render
from projections.reconcile import record_of
from tests.unit.projection_events import PATIENT, ev, mg, order, registered, scheduled


def prn(value, freq):
    return {"form": "as_needed", "dose": mg(value), "frequency": freq}


def given(at, order_id, value, route="po", kind="scheduled"):
    return ev("dose_given", at, order_id=order_id, dose=mg(value), route=route, kind=kind)


def changed(at, order_id, reason, **fields):
    return ev("order_changed", at, order_id=order_id, reason=reason, **fields)


STORY = [
    registered("2007-10-01T08:00:00-07:00"),
    ev("weight_recorded", "2007-10-01T08:05:00-07:00", weight=mg(80, "kg")),
    ev("admitted", "2007-10-01T09:00:00-07:00", location="ward 5"),
    order("2007-10-01T10:00:00-07:00", "met-1", "methadone", "po", scheduled(40, "tid"), indication="cancer pain"),
    order("2007-10-02T10:00:00-07:00", "ket-1", "ketamine", "iv", {"form": "infusion", "rate": mg(55, "mcg/kg/h")},
          indication="opioid-refractory pain"),
    order("2007-10-03T10:00:00-07:00", "mem-1", "memantine", "po", scheduled(5, "bid"),
          indication="neuropathic pain", note="NMDA antagonist to replace ketamine"),
    changed("2007-10-04T10:00:00-07:00", "ket-1", "taper as memantine starts", rate=mg(27.5, "mcg/kg/h")),
    changed("2007-10-05T10:00:00-07:00", "mem-1", "dose doubled after the failed ketamine taper", dose=mg(10)),
    order("2007-10-05T11:00:00-07:00", "oxy-1", "oxycodone", "po", prn(10, "q4h"), indication="breakthrough pain"),
    given("2007-10-06T08:00:00-07:00", "met-1", 40),
    given("2007-10-06T09:00:00-07:00", "mem-1", 10),
    given("2007-10-06T13:00:00-07:00", "oxy-1", 10, kind="as_needed"),
    changed("2007-10-06T14:00:00-07:00", "ket-1", "continuing taper", rate=mg(13.8, "mcg/kg/h")),
]
DISCHARGE = ev("discharged", "2007-10-07T11:00:00-07:00", destination="nursing home", medication_list=[
    {"drug": "methadone", "route": "po", "dosing": scheduled(40, "tid"), "order_id": "met-1"},
    {"drug": "oxycodone", "route": "po", "dosing": prn(10, "q4h"), "order_id": "oxy-1"},
], decisions=[{"drug": "ketamine", "action": "stop", "reason": "not given outside hospital"}])


def packet(events, at=None):
    rec = record_of(events, PATIENT)
    return build_packet(rec, rec.time(at) if at else None)


def test_in_hospital_the_packet_lists_the_active_orders_with_tapers_and_last_doses():
    p = packet(STORY, "2007-10-06T15:00")
    assert (p["mode"], p["title"], p["transition"]["kind"]) == ("in hospital", "Medication handoff (in hospital)",
                                                                 "admission")
    meds = {m["drug"]: m for m in p["medications"]}
    assert list(meds) == ["ketamine", "memantine", "methadone", "oxycodone"]
    ket = meds["ketamine"]
    assert ket["taper"]["text"] == "55 mcg/kg/h -> 27.5 mcg/kg/h -> 13.8 mcg/kg/h since 2007-10-04 10:00"
    assert ket["last_dose"] == {"at": None, "running_since": "2007-10-06T14:00:00-07:00", "rate": 13.8,
                                "rate_unit": "mcg/kg/h", "route": "iv", "kind": "infusion",
                                "order_id": "ket-1", "stopped": False}
    assert meds["ketamine"]["rate_mg_per_h"] == 1.104  # 13.8 mcg/kg/h x 80 kg
    assert meds["memantine"]["last_dose"]["at"] == "2007-10-06T09:00:00-07:00"
    assert meds["memantine"]["taper"] is None  # raised, not tapered
    assert [t["drug"] for t in p["tapers"]] == ["ketamine"]


def test_why_it_matters_quotes_indications_reasons_notes_and_mentions():
    p = packet(STORY, "2007-10-06T15:00")
    mem = next(m for m in p["medications"] if m["drug"] == "memantine")
    assert mem["why"] == [
        "first ordered 2007-10-03 10:00 for neuropathic pain",
        "order note: NMDA antagonist to replace ketamine",
        "2007-10-04 10:00 ketamine changed: taper as memantine starts",
        "2007-10-05 10:00 dose 5 mg -> 10 mg: dose doubled after the failed ketamine taper",
    ]


def test_at_a_discharge_the_packet_is_the_list_that_leaves_with_the_omission_on_top():
    p = packet(STORY + [DISCHARGE])  # no time: the latest discharge
    assert p["mode"] == "transition" and p["at"] == "2007-10-07T11:00:00-07:00"
    assert [(m["drug"], m["status"]) for m in p["medications"]] == [("methadone", "continued"),
                                                                    ("oxycodone", "continued")]
    assert [x["drug"] for x in p["omitted"]] == ["memantine"]
    assert p["omitted"][0]["why"][0] == "first ordered 2007-10-03 10:00 for neuropathic pain"
    assert [(x["drug"], x["reason"]) for x in p["stopped"]] == [("ketamine", "not given outside hospital")]
    top = p["alerts"]["current"][0]
    assert (top["drug"], top["severity"], top["status"]) == ("memantine", "high", "open")
    # the list's indication comes from the order it carries
    assert p["medications"][0]["line"] == {"drug": "methadone", "route": "po", "dosing": scheduled(40, "tid"),
                                           "indication": "cancer pain", "order_id": "met-1"}


def test_administered_and_prescribed_mme_are_kept_apart():
    p = packet(STORY + [DISCHARGE])
    adm, pre = p["mme"]["administered"], p["mme"]["prescribed"]
    assert adm["kind"] == "administered" and pre["kind"] == "prescribed"
    day = next(d for d in adm["days"] if d["date"] == "2007-10-06")
    # given on 2007-10-06: methadone 40 mg x 4.7 = 188; oxycodone 10 mg x 1.5 = 15
    assert day["mme"] == 203
    # the list that leaves: methadone 40 mg tid = 120 mg x 4.7 = 564; oxycodone 10 mg q4h at most 60 mg x 1.5 = 90
    assert (pre["scheduled_mme"], pre["as_needed_max_mme"], pre["source"]) == (564, 90, "the list that leaves")
    assert [d["date"] for d in adm["days"]][-1] == "2007-10-07" and adm["days"][-1]["partial"]


def test_changes_of_the_last_7_days_in_order():
    p = packet(STORY + [DISCHARGE])
    rows = [(c["at"], c["drug"], c["change"]) for c in p["changes_last_7_days"]]
    assert rows[:2] == [("2007-10-01 09:00", None, "admission to ward 5 (orders active before it end)"),
                        ("2007-10-01 10:00", "methadone", "started: 40 mg po three times daily")]
    assert ("2007-10-05 10:00", "memantine", "5 mg po twice daily -> 10 mg po twice daily") in rows
    assert rows[-1] == ("2007-10-07 11:00", None, "discharge to nursing home (orders active before it end)")
    assert all(r[0] > "2007-09-30 11:00" for r in rows)


def test_every_format_puts_open_alerts_before_the_medications():
    p = packet(STORY + [DISCHARGE])
    for fmt, alerts, meds in (("text", "!! OPEN ALERTS", "MEDICATIONS ON THE LIST THAT LEAVES"),
                              ("md", "## Open alerts", "## Medications on the list that leaves"),
                              ("html", '<section class="alerts"', 'id="medications"')):
        out = render(p, fmt)
        assert 0 <= out.index(alerts) < out.index("memantine") < out.index(meds), fmt
    html = render(p, "html")
    assert "<script" not in html.lower() and "<link" not in html.lower() and "<style>" in html
    assert json.loads(render(p, "json")) == p


def test_the_fhir_packet_reads_back_as_the_same_list():
    p = packet(STORY + [DISCHARGE])
    bundle = json.loads(render(p, "fhir"))
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[0] == "List" and kinds.count("MedicationStatement") == 3  # 2 lines + the documented stop
    assert kinds.count("DetectedIssue") == len(p["alerts"]["current"]) + len(p["alerts"]["older"])
    flags = [e["flag"]["coding"][0]["code"] for e in bundle["entry"][0]["resource"]["entry"]]
    assert flags == ["01", "01", "05"]  # unchanged, unchanged, ceased
    assert medication_list_from_bundle(bundle) == [m["line"] for m in p["medications"]]


def test_a_patient_with_no_transition_and_no_order():
    p = packet(STORY[:1], "2007-10-02T12:00")
    assert (p["mode"], p["transition"], p["reconciliation"], p["medications"]) == ("outside hospital", None, None, [])
    for fmt in ("text", "md", "html", "json", "fhir"):
        out = render(p, fmt)
        assert "topped at this transition" not in out, fmt
    assert render(p, "text").splitlines()[:4] == [
        "MEDICATION HANDOFF (OUTSIDE HOSPITAL)", "patient p-1; at 2007-10-02 12:00 (America/Los_Angeles)", "",
        "Open alerts: none in the last 7 days or at this transition"]


def test_a_transfer_is_the_packet_at_its_time_then_the_orders_go_on():
    transfer = ev("transferred", "2007-10-06T16:00:00-07:00", to_location="rehab unit", medication_list=[
        {"drug": "methadone", "route": "po", "dosing": scheduled(40, "tid"), "order_id": "met-1"},
        {"drug": "memantine", "route": "po", "dosing": scheduled(10, "bid"), "order_id": "mem-1"}],
        decisions=[{"drug": "ketamine", "action": "stop", "reason": "taper ends before transfer"},
                   {"drug": "oxycodone", "action": "stop", "reason": "pain controlled"}])
    later = changed("2007-10-07T10:00:00-07:00", "mem-1", "renal function", dose=mg(5))
    at_transfer = packet(STORY + [transfer, later], "2007-10-06T16:00:00-07:00")
    assert (at_transfer["mode"], at_transfer["title"]) == ("transition",
                                                          "Medication handoff: transfer to rehab unit at 2007-10-06 16:00")
    assert [m["drug"] for m in at_transfer["medications"]] == ["methadone", "memantine"]
    next_day = packet(STORY + [transfer, later], "2007-10-07T12:00:00-07:00")
    assert next_day["mode"] == "in hospital" and next_day["reconciliation"]["transition"] == "transfer"
    mem = next(m for m in next_day["medications"] if m["drug"] == "memantine")
    assert mem["text"] == "5 mg po twice daily"  # the order as it is now, not the list of the transfer


def test_a_last_dose_from_another_order_of_the_drug_names_that_order():
    """Two oxycodone orders: the last dose of the drug is the nurse's clock for the next one,
    but on the line of the order that did not give it, it says which order did."""
    events = STORY + [order("2007-10-06T16:00:00-07:00", "oxy-2", "oxycodone", "po", scheduled(10, "q12h")),
                      given("2007-10-06T17:00:00-07:00", "oxy-1", 10, kind="as_needed")]
    p = packet(events, "2007-10-06T18:00")
    lines = {m["order_id"]: m for m in p["medications"] if m["drug"] == "oxycodone"}
    assert lines["oxy-1"]["last_dose"] == lines["oxy-2"]["last_dose"]
    text = render(p, "text")
    assert "last dose: 2007-10-06 17:00: 10 mg po (as needed)\n" in text
    assert "last dose: 2007-10-06 17:00: 10 mg po (as needed), order oxy-1\n" in text
