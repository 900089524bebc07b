"""Dosing alerts: weight-based rate without a weight, as-needed too soon or over the daily
maximum, PCA over its limit."""
from __future__ import annotations

from projections.alerts.engine import patient_alerts
from projections.timeline import instant
from tests.unit.projection_events import admitted, ev, given, infusion, mg, order, registered, weight
from tests.unit.test_alert_config import only


def base():
    return [registered(), admitted("2007-10-14T09:00:00-07:00")]


def test_a_weight_entered_in_error_leaves_a_weight_based_infusion_without_a_dose():
    events = base() + [
        ev("weight_recorded", "2007-10-14T08:00:00-07:00", weight=mg(91, "kg"), event_id="w-1"),
        order("2007-10-16T14:00:00-07:00", "ket", "ketamine", "iv", infusion(55, "mcg/kg/h"), event_id="o-ket"),
    ]
    assert patient_alerts(events, settings=only("weight_missing")) == []
    events.append(ev("entered_in_error", "2007-10-16T15:00:00-07:00", target_event_id="w-1",
                     reason="charted on the wrong patient", event_id="fix-1"))
    [a] = patient_alerts(events, settings=only("weight_missing"))
    assert (a.severity, a.drug, a.at, a.evidence) == ("high", "ketamine", instant("2007-10-16T14:00:00-07:00"),
                                                      ["o-ket", "fix-1"])
    assert a.message.startswith("ketamine iv infusion 55 mcg/kg/h (order ket) runs at 55 mcg/kg/h from 2007-10-16 "
                                "14:00 with no current weight")
    # a new weight gives the infusion a dose again from then on: the alert stays, resolved
    events.append(weight("2007-10-16T16:00:00-07:00", 90))
    [later] = patient_alerts(events, settings=only("weight_missing"))
    assert (later.id, later.status) == (a.id, "resolved")


def prn_order(frequency="q4h", max_daily=None):
    dosing = {"form": "as_needed", "dose": mg(10), "frequency": frequency}
    if max_daily:
        dosing["max_daily"] = mg(max_daily)
    return order("2007-10-14T10:00:00-07:00", "oxy", "oxycodone", "po", dosing, event_id="o-oxy")


def prn(at, n, value=10):
    return given(f"2007-10-15T{at}:00-07:00", "oxy", value, route="po", kind="as_needed", event_id=f"g{n}")


def test_an_as_needed_dose_sooner_than_its_frequency_allows():
    events = base() + [prn_order(), prn("08:00", 1), prn("12:00", 2), prn("15:00", 3)]
    [a] = patient_alerts(events, settings=only("as_needed_too_soon"))
    assert (a.severity, a.at, a.evidence) == ("moderate", instant("2007-10-15T15:00:00-07:00"), ["g3", "g2", "o-oxy"])
    assert a.message.startswith("oxycodone 10 mg po given at 2007-10-15 15:00, 3 h 00 min after the previous dose at "
                                "2007-10-15 12:00; oxycodone po 10 mg q4h as needed (order oxy) allows one every 4 h.")
    lenient = only("as_needed_too_soon", as_needed_too_soon={"tolerance_minutes": 60})
    assert patient_alerts(events, settings=lenient) == []


def test_a_dose_entered_in_error_does_not_count():
    events = base() + [prn_order(), prn("08:00", 1), prn("12:00", 2), prn("12:01", 3),
                       ev("entered_in_error", "2007-10-15T13:00:00-07:00", target_event_id="g3",
                          reason="charted twice")]
    assert patient_alerts(events, settings=only("as_needed_too_soon", "as_needed_daily_max")) == []


def test_more_than_the_daily_maximum_or_more_doses_than_the_frequency_allows():
    capped = base() + [prn_order(max_daily=25), prn("00:30", 1), prn("06:00", 2), prn("12:00", 3), prn("18:00", 4)]
    [a] = patient_alerts(capped, settings=only("as_needed_daily_max"))
    assert (a.severity, a.at, a.evidence[:2]) == ("high", instant("2007-10-15T12:00:00-07:00"), ["g3", "o-oxy"])
    assert "on 2007-10-15: 30 mg given, more than its maximum of 25 mg a day (the dose at 12:00 went over)" in a.message
    counted = base() + [prn_order("q6h")] + [prn(t, i) for i, t in enumerate(("00:00", "06:00", "12:00", "18:00"))]
    assert patient_alerts(counted, settings=only("as_needed_daily_max")) == []
    counted.append(prn("23:30", 9))
    [b] = patient_alerts(counted, settings=only("as_needed_daily_max"))
    assert "5 doses given, more than the 4 a day its frequency allows" in b.message


def test_pca_over_its_limit_once_per_episode():
    dosing = {"form": "pca", "demand_dose": mg(2), "lockout_minutes": 6, "basal_rate": mg(1, "mg/h"),
              "limit": mg(10), "limit_hours": 1}
    events = base() + [order("2007-10-15T00:00:00-07:00", "pca", "hydromorphone", "iv", dosing, event_id="o-pca")]
    # basal 1 mg/h plus demands: 00:10 .. 00:50 (5 x 2 mg = 10 mg) + 50 min basal = 10.83 mg at 00:50
    for i, minute in enumerate((10, 20, 30, 40, 50)):
        events.append(given(f"2007-10-15T00:{minute}:00-07:00", "pca", 2, kind="pca_demand", event_id=f"p{i}"))
    events.append(given("2007-10-15T00:58:00-07:00", "pca", 2, kind="pca_demand", event_id="p5"))  # still over
    events.append(given("2007-10-15T03:00:00-07:00", "pca", 2, kind="pca_demand", event_id="p6"))  # back within
    for i, minute in enumerate((5, 12, 19, 26, 33)):
        events.append(given(f"2007-10-15T03:{minute:02d}:00-07:00", "pca", 2, kind="pca_demand", event_id=f"q{i}"))
    found = patient_alerts(events, settings=only("pca_limit"))
    assert [(a.at, a.evidence[0]) for a in found] == [
        (instant("2007-10-15T00:50:00-07:00"), "p4"),
        (instant("2007-10-15T03:26:00-07:00"), "q3"),  # 5 demands since 02:26 (10 mg) + 1 mg basal: over again
    ]
    assert "delivered 10.83 mg in the 1 h up to 2007-10-15 00:50 (10 mg demand and boluses, 0.8333 mg basal), " \
           "over its limit of 10 mg per 1 h" in found[0].message
