"""Reconciliation alerts: unreconciled stops at transitions, admission discrepancies."""
from __future__ import annotations

import copy

from projections.alerts.engine import patient_alerts
from projections.timeline import instant
from tests.unit.projection_events import ev, order, registered, scheduled
from tests.unit.test_alert_config import only

TRANSITION_RULES = ("unreconciled_stop", "admission_discrepancy")


def alerts(events, *names, **kw):
    return patient_alerts(events, settings=only(*(names or TRANSITION_RULES)), **kw)


def line(drug, value, frequency, route="po", **kw):
    return {"drug": drug, "route": route, "dosing": scheduled(value, frequency), **kw}


def stay():
    """Admitted with memantine, methadone and gabapentin ordered as at home."""
    return [
        registered(),
        ev("home_medication_recorded", "2007-10-14T08:30:00-07:00", drug="methadone", route="po",
           dosing=scheduled(40, "tid"), event_id="home-methadone"),
        ev("admitted", "2007-10-14T09:00:00-07:00", location="ward 5", event_id="adm-1"),
        order("2007-10-14T10:00:00-07:00", "mem-1", "memantine", "po", scheduled(10, "bid"), event_id="o-mem"),
        order("2007-10-14T10:00:00-07:00", "met-1", "methadone", "po", scheduled(40, "tid"), event_id="o-met"),
        order("2007-10-14T10:00:00-07:00", "gab-1", "gabapentin", "po", scheduled(700, "tid"), event_id="o-gab"),
    ]


def discharge(at="2007-12-03T11:00:00-08:00", lines=(), decisions=(), event_id="dc-1"):
    return ev("discharged", at, destination="nursing home", medication_list=list(lines),
              decisions=list(decisions), event_id=event_id)


def test_a_drug_dropped_from_the_discharge_list_without_a_decision_is_one_high_alert():
    events = stay() + [discharge(lines=[line("methadone", 40, "tid"), line("gabapentin", 700, "tid")])]
    [a] = alerts(events)
    assert (a.rule, a.severity, a.drug) == ("unreconciled_stop", "high", "memantine")
    assert a.at == instant("2007-12-03T11:00:00-08:00")
    assert a.evidence == ["dc-1", "o-mem"]
    assert a.message.startswith("memantine po 10 mg bid (order mem-1) was active before the discharge to nursing "
                                "home at 2007-12-03 11:00, but the discharge list does not carry it over")
    assert a.id.startswith("omission-")


def test_carried_over_by_drug_or_by_order_id_is_no_alert():
    lines = [line("methadone", 40, "tid"), line("gabapentin", 900, "tid"),
             {**line("namenda", 10, "bid"), "order_id": "mem-1"}]
    assert alerts(stay() + [discharge(lines=lines)]) == []


def test_a_documented_stop_change_or_hold_is_no_alert_but_continue_is():
    lines = [line("methadone", 40, "tid"), line("gabapentin", 700, "tid")]
    for action in ("stop", "change", "hold"):
        decisions = [{"drug": "memantine", "action": action, "reason": "pain resolved"}]
        assert alerts(stay() + [discharge(lines=lines, decisions=decisions)]) == [], action
    by_order = [{"drug": "namenda", "order_id": "mem-1", "action": "stop", "reason": "pain resolved"}]
    assert alerts(stay() + [discharge(lines=lines, decisions=by_order)]) == []
    keep = [{"drug": "memantine", "action": "continue", "reason": "needed"}]
    [a] = alerts(stay() + [discharge(lines=lines, decisions=keep)])
    assert a.drug == "memantine"


def test_a_discontinuation_before_or_at_the_same_instant_as_the_discharge_is_a_documented_stop():
    lines = [line("methadone", 40, "tid"), line("gabapentin", 700, "tid")]
    before = ev("order_discontinued", "2007-12-03T10:00:00-08:00", order_id="mem-1", reason="no longer needed")
    assert alerts(stay() + [before, discharge(lines=lines)]) == []
    # charted after the discharge event but at its very instant: the course lets the discharge
    # end the order first; the discontinuation still documents the stop
    same = ev("order_discontinued", "2007-12-03T11:00:00-08:00", order_id="mem-1", reason="no longer needed")
    assert alerts(stay() + [discharge(lines=lines), same]) == []


def test_transfer_only_with_a_list_and_readmission_checks_the_last_discharge_list():
    lines = [line("methadone", 40, "tid"), line("gabapentin", 700, "tid"), line("memantine", 10, "bid")]
    plain = ev("transferred", "2007-11-01T10:00:00-07:00", to_location="ward 9")
    assert alerts(stay() + [plain]) == []
    listed = ev("transferred", "2007-11-01T10:00:00-07:00", to_location="ward 9", event_id="tr-1",
                medication_list=[{**line("methadone", 40, "tid"), "order_id": "met-1"}])
    found = alerts(stay() + [listed], "unreconciled_stop")
    assert sorted(a.drug for a in found) == ["gabapentin", "memantine"]
    back = ev("readmitted", "2007-12-19T14:00:00-08:00", location="ward 7", event_id="re-1",
              medication_list=[line("methadone", 40, "tid"), line("gabapentin", 700, "tid")])
    [a] = alerts(stay() + [discharge(lines=lines), back], "unreconciled_stop")
    assert (a.drug, a.evidence) == ("memantine", ["re-1", "dc-1"])
    assert "(on the discharge list) was active before the readmission at 2007-12-19 14:00" in a.message


def test_home_dose_ordered_differently_without_a_reason():
    events = stay() + [ev("home_medication_recorded", "2007-10-14T08:31:00-07:00", drug="gabapentin",
                          route="po", dosing=scheduled(600, "tid"), event_id="home-gab")]
    [a] = alerts(events, "admission_discrepancy")
    assert (a.rule, a.severity, a.drug) == ("admission_discrepancy", "moderate", "gabapentin")
    assert a.evidence == ["adm-1", "home-gab", "o-gab"]
    assert a.at == instant("2007-10-14T10:00:00-07:00")  # when the differing order was written
    assert "gabapentin po 600 mg tid (home list), but ordered as gabapentin po 700 mg tid (order gab-1) after " \
           "the admission (1800 mg/day before, 2100 mg/day ordered)" in a.message


def test_the_same_dose_in_other_words_is_no_discrepancy():
    events = stay() + [ev("home_medication_recorded", "2007-10-14T08:31:00-07:00", drug="gabapentin",
                          route="by mouth", dosing=scheduled(0.7, "three times daily", unit="g"))]
    assert alerts(events, "admission_discrepancy") == []


def test_a_change_decision_documents_the_dose_difference():
    events = stay() + [ev("home_medication_recorded", "2007-10-14T08:31:00-07:00", drug="gabapentin",
                          route="po", dosing=scheduled(600, "tid"))]
    events[2]["decisions"] = [{"drug": "gabapentin", "action": "change", "reason": "renal function"}]
    assert alerts(events, "admission_discrepancy") == []


def test_a_home_medication_never_ordered_is_raised_once_the_window_is_over():
    events = stay() + [ev("home_medication_recorded", "2007-10-14T08:32:00-07:00", drug="naproxen", route="po",
                          dosing=scheduled(500, "bid"), event_id="home-nap")]
    early = events + [ev("weight_recorded", "2007-10-15T08:00:00-07:00", weight={"value": 80, "unit": "kg"})]
    assert alerts(early, "admission_discrepancy") == []  # 23 h in: still time to order it
    later = events + [ev("weight_recorded", "2007-10-15T09:30:00-07:00", weight={"value": 80, "unit": "kg"})]
    [a] = alerts(later, "admission_discrepancy")
    assert a.drug == "naproxen" and a.message.startswith("naproxen po 500 mg bid (home list) was not ordered after "
                                                         "the admission at 2007-10-14 09:00")
    stopped = copy.deepcopy(later)
    stopped[2]["decisions"] = [{"drug": "naproxen", "action": "stop", "reason": "bleeding risk after surgery"}]
    assert alerts(stopped, "admission_discrepancy") == []
