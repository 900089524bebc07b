"""Alerts the record itself puts right are resolved: when, why, by which events, and only from then."""
from __future__ import annotations

from projections.alerts.engine import patient_alerts
from projections.timeline import instant
from tests.unit.projection_events import admitted, ev, infusion, mg, order, registered, scheduled
from tests.unit.test_alert_config import only
from tests.unit.test_alert_opioids import combination_events
from tests.unit.test_alert_transitions import discharge, line, stay


def alerts(events, *rules, **kw):
    return patient_alerts(events, settings=only(*rules), **kw)


def dropped_memantine():
    return stay() + [discharge(lines=[line("methadone", 40, "tid"), line("gabapentin", 700, "tid")])]


def test_a_drug_dropped_at_discharge_is_resolved_when_ordered_again_and_only_from_then():
    events = dropped_memantine() + [
        ev("readmitted", "2007-12-19T14:00:00-08:00", location="ward 7", event_id="re-1"),
        order("2007-12-19T15:00:00-08:00", "mem-2", "memantine", "po", scheduled(10, "bid"), event_id="o-mem-2")]
    [a] = alerts(events, "unreconciled_stop")
    assert (a.status, a.resolution.at, a.resolution.evidence) == \
        ("resolved", instant("2007-12-19T15:00:00-08:00"), ("o-mem-2",))
    assert a.resolution.reason == "memantine ordered again 16 days after the discharge: memantine po 10 mg bid " \
                                  "(order mem-2)"
    [before] = alerts(events, "unreconciled_stop", at=instant("2007-12-19T14:59:00-08:00"))
    assert (before.id, before.status, before.resolution) == (a.id, "open", None)
    [never] = alerts(dropped_memantine(), "unreconciled_stop")
    assert (never.status, never.resolution) == ("open", None)


def test_a_later_list_carrying_the_drug_or_a_later_decision_about_it_resolves_the_omission():
    sent = ev("readmitted", "2007-12-05T14:00:00-08:00", location="ward 7", event_id="re-1",
              medication_list=[line("memantine", 10, "bid"), line("methadone", 40, "tid")])
    [a] = [x for x in alerts(dropped_memantine() + [sent], "unreconciled_stop") if x.drug == "memantine"]
    assert a.status == "resolved" and a.resolution.evidence == ("re-1",)
    assert a.resolution.reason == "memantine carried on the list of the readmission 2 days after the discharge"
    decided = ev("readmitted", "2007-12-05T14:00:00-08:00", location="ward 7", event_id="re-2",
                 decisions=[{"drug": "memantine", "action": "stop", "reason": "no longer needed {pain gone}"}])
    [b] = alerts(dropped_memantine() + [decided], "unreconciled_stop")
    assert b.resolution.reason == ("memantine decided about at the readmission 2 days after the discharge: "
                                   "stop (no longer needed {pain gone})")
    # "continue" while nothing continues it is no decision, as for the rule itself
    decided["decisions"][0]["action"] = "continue"
    [c] = alerts(dropped_memantine() + [decided], "unreconciled_stop")
    assert (c.status, c.resolution) == ("open", None)


def home_gabapentin(*later):
    return stay() + [ev("home_medication_recorded", "2007-10-14T08:31:00-07:00", drug="gabapentin", route="po",
                        dosing=scheduled(600, "tid"), event_id="home-gab"), *later]


def test_a_dose_discrepancy_is_resolved_by_a_change_to_the_home_dose_not_by_another_dose():
    other = ev("order_changed", "2007-10-15T09:00:00-07:00", order_id="gab-1", dose=mg(800), reason="pain",
               event_id="ch-1")
    [a] = alerts(home_gabapentin(other), "admission_discrepancy")
    assert (a.status, a.resolution) == ("open", None)
    home = ev("order_changed", "2007-10-16T09:00:00-07:00", order_id="gab-1", dose=mg(0.6, "g"),
              reason="home dose", event_id="ch-2")
    [b] = alerts(home_gabapentin(other, home), "admission_discrepancy")
    assert (b.id, b.status, b.resolution.at, b.resolution.evidence) == \
        (a.id, "resolved", instant("2007-10-16T09:00:00-07:00"), ("ch-2",))
    assert b.resolution.reason == "gabapentin changed as the line: gabapentin po 0.6 g tid (order gab-1)"


def test_a_dose_discrepancy_is_resolved_once_every_order_for_the_drug_is_stopped():
    stop = ev("order_discontinued", "2007-10-20T09:00:00-07:00", order_id="gab-1", reason="pain resolved",
              event_id="x-gab")
    [a] = alerts(home_gabapentin(stop), "admission_discrepancy")
    assert (a.status, a.resolution.evidence, a.resolution.reason) == \
        ("resolved", ("x-gab",), "gabapentin stopped (pain resolved)")
    # stopped, then ordered again at another dose: not put right
    again = order("2007-10-21T09:00:00-07:00", "gab-2", "gabapentin", "po", scheduled(900, "tid"))
    [b] = alerts(home_gabapentin(stop, again), "admission_discrepancy")
    assert b.status == "open"


def test_a_home_medication_never_ordered_is_resolved_by_a_late_order():
    events = stay() + [
        ev("home_medication_recorded", "2007-10-14T08:32:00-07:00", drug="naproxen", route="po",
           dosing=scheduled(500, "bid"), event_id="home-nap"),
        order("2007-10-15T12:30:00-07:00", "nap-1", "naproxen", "po", scheduled(500, "bid"), event_id="o-nap")]
    [a] = alerts(events, "admission_discrepancy")
    assert (a.status, a.resolution.evidence) == ("resolved", ("o-nap",))
    assert a.resolution.reason == "naproxen ordered 27 h 30 min after the admission: naproxen po 500 mg bid " \
                                  "(order nap-1)"


def test_a_combination_is_resolved_while_it_no_longer_runs_and_open_again_if_it_does():
    held = ev("order_held", "2007-10-16T08:00:00-07:00", order_id="lz", reason="drowsy", event_id="h-lz")
    [a] = alerts(combination_events() + [held], "opioid_benzodiazepine")
    assert (a.status, a.resolution.at, a.resolution.evidence) == \
        ("resolved", instant("2007-10-16T08:00:00-07:00"), ("h-lz",))
    assert a.resolution.reason == "lorazepam and opioids no longer run together: lorazepam held"
    resumed = ev("order_resumed", "2007-10-17T08:00:00-07:00", order_id="lz")
    [b] = alerts(combination_events() + [held, resumed], "opioid_benzodiazepine")
    assert (b.id, b.status, b.resolution) == (a.id, "open", None)


def test_death_puts_nothing_right():
    died = ev("died", "2007-10-16T08:00:00-07:00")
    [a] = alerts(combination_events() + [died], "opioid_benzodiazepine")
    assert (a.status, a.resolution) == ("open", None)


def test_two_as_needed_opioids_resolved_when_one_is_stopped():
    prn = lambda v: {"form": "as_needed", "dose": mg(v), "frequency": "q4h"}  # noqa: E731
    events = [registered(), admitted("2007-10-14T09:00:00-07:00"),
              order("2007-10-14T10:00:00-07:00", "oxy", "oxycodone", "po", prn(10), event_id="o-oxy"),
              order("2007-10-14T12:00:00-07:00", "mor", "morphine", "iv", prn(4), event_id="o-mor"),
              ev("order_discontinued", "2007-10-15T08:00:00-07:00", order_id="mor", reason="oral is enough",
                 event_id="x-mor")]
    [a] = alerts(events, "duplicate_opioid")
    assert (a.status, a.resolution.evidence) == ("resolved", ("x-mor",))
    assert a.resolution.reason == "morphine and oxycodone no longer run together: morphine stopped (oral is enough)"


def test_an_infusion_without_a_weight_is_resolved_by_a_new_weight_or_by_its_stop():
    events = [registered(), admitted("2007-10-14T09:00:00-07:00"),
              ev("weight_recorded", "2007-10-14T08:00:00-07:00", weight=mg(91, "kg"), event_id="w-1"),
              order("2007-10-16T14:00:00-07:00", "ket", "ketamine", "iv", infusion(55, "mcg/kg/h"), event_id="o-ket"),
              ev("entered_in_error", "2007-10-16T15:00:00-07:00", target_event_id="w-1", reason="wrong patient")]
    [a] = alerts(events, "weight_missing")
    assert (a.status, a.resolution) == ("open", None)
    weighed = ev("weight_recorded", "2007-10-16T16:00:00-07:00", weight=mg(90, "kg"), event_id="w-2")
    [b] = alerts(events + [weighed], "weight_missing")
    assert (b.status, b.resolution.at, b.resolution.evidence) == \
        ("resolved", instant("2007-10-16T16:00:00-07:00"), ("w-2",))
    assert b.resolution.reason == "ketamine dosable again: 55 mcg/kg/h, weight 90 kg = 4.95 mg/h"
    stop = ev("order_discontinued", "2007-10-16T17:00:00-07:00", order_id="ket", reason="pain settled",
              event_id="x-ket")
    [c] = alerts(events + [stop], "weight_missing")
    assert (c.status, c.resolution.evidence, c.resolution.reason) == ("resolved", ("x-ket",), "ketamine stopped")


def test_what_resolves_an_admission_alert_happens_in_the_same_stay():
    """An order written in a later stay does not put right the previous admission's omission."""
    events = stay() + [
        ev("home_medication_recorded", "2007-10-14T08:32:00-07:00", drug="naproxen", route="po",
           dosing=scheduled(500, "bid"), event_id="home-nap"),
        discharge(at="2007-10-20T11:00:00-07:00", lines=[line("methadone", 40, "tid"), line("gabapentin", 700, "tid"),
                                                          line("memantine", 10, "bid")]),
        ev("readmitted", "2007-11-02T14:00:00-07:00", location="ward 7", event_id="re-1"),
        order("2007-11-02T15:00:00-07:00", "nap-1", "naproxen", "po", scheduled(500, "bid"), event_id="o-nap")]
    [a] = [x for x in alerts(events, "admission_discrepancy") if x.drug == "naproxen"]
    assert (a.at, a.status, a.resolution) == (instant("2007-10-14T09:00:00-07:00"), "open", None)
