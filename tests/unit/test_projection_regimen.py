"""The regimen answer built from a course: fields, PCA, weight-based rates, listed lines."""
from __future__ import annotations

from projections.course import build_course
from projections.report import regimen
from projections.timeline import instant, zone
from tests.unit.projection_events import admitted, ev, infusion, mg, order, rate, registered, scheduled, weight

LA = zone("America/Los_Angeles")


def base():
    return [registered(), weight("2007-10-14T08:00:00-07:00", 91), admitted("2007-10-14T09:00:00-07:00")]


def meds_at(events, at):
    return regimen(build_course(events), instant(at), LA)["medications"]


def test_scheduled_order_fields():
    events = base() + [order("2007-10-20T09:00:00-07:00", "mem", "memantine", "po", scheduled(5, "twice daily"),
                             indication="neuropathic pain")]
    (m,) = meds_at(events, "2007-10-20T12:00:00-07:00")
    assert m == {
        "order_id": "mem", "drug": "memantine", "route": "po", "form": "scheduled", "dose": 5, "unit": "mg",
        "frequency": "bid", "rate": None, "rate_unit": None, "as_needed": False, "status": "active",
        "started_at": "2007-10-20T09:00:00-07:00", "last_change": None, "indication": "neuropathic pain",
        "prescriber": "dr.a", "source": "order", "event_id": events[-1]["event_id"],
    }


def test_weight_based_infusion_shows_ordered_rate_and_mg_per_h_with_last_change():
    events = base() + [
        order("2007-10-16T14:00:00-07:00", "ket", "ketamine", "iv", infusion(55, "mcg/kg/h")),
        rate("2007-10-20T10:00:00-07:00", "ket", 27.5, "mcg/kg/h", "taper"),
    ]
    (m,) = meds_at(events, "2007-10-20T12:00:00-07:00")
    assert (m["rate"], m["rate_unit"], m["rate_mg_per_h"], m["weight_kg"]) == (27.5, "mcg/kg/h", 2.5025, 91)
    assert m["last_change"] == {"at": "2007-10-20T10:00:00-07:00", "what": "rate",
                                "values": {"rate": {"value": 27.5, "unit": "mcg/kg/h"}}, "reason": "taper",
                                "event_id": events[-1]["event_id"]}
    (before,) = meds_at(events, "2007-10-20T09:00:00-07:00")
    assert before["rate_mg_per_h"] == 5.005 and before["last_change"] is None


def test_pca_settings_and_hold():
    pca = {"form": "pca", "demand_dose": mg(1.2), "lockout_minutes": 6, "basal_rate": mg(1.2, "mg/h"),
           "limit": mg(20), "limit_hours": 1}
    events = base() + [
        order("2007-10-15T10:00:00-07:00", "pca", "hydromorphone", "iv", pca),
        ev("order_changed", "2007-10-15T12:00:00-07:00", order_id="pca", basal_rate=mg(3, "mg/h"), reason="pain"),
        ev("order_held", "2007-10-15T13:00:00-07:00", order_id="pca", reason="sedated"),
    ]
    (m,) = meds_at(events, "2007-10-15T14:00:00-07:00")
    assert m["status"] == "on-hold" and m["dose"] == 1.2 and m["rate"] == 3 and m["rate_mg_per_h"] == 3
    assert m["pca"] == {"demand_dose": {"value": 1.2, "unit": "mg"}, "lockout_minutes": 6,
                        "basal_rate": {"value": 3, "unit": "mg/h"}, "limit": {"value": 20, "unit": "mg"},
                        "limit_hours": 1}
    assert m["last_change"]["what"] == "held" and m["last_change"]["reason"] == "sedated"


def test_discharge_list_lines_are_listed_with_their_source():
    events = base() + [
        order("2007-10-20T09:00:00-07:00", "met", "methadone", "po", scheduled(40, "tid")),
        ev("discharged", "2007-12-03T11:00:00-08:00", destination="nursing home",
           medication_list=[{"drug": "methadone", "route": "po", "dosing": scheduled(40, "tid"), "order_id": "met",
                             "indication": "pain"}]),
    ]
    (m,) = meds_at(events, "2007-12-09T12:00:00-08:00")
    assert (m["drug"], m["dose"], m["frequency"], m["status"], m["source"], m["order_id"]) == (
        "methadone", 40, "tid", "active", "discharge list", "met")
    assert m["started_at"] == "2007-12-03T11:00:00-08:00"


def test_entered_in_error_order_is_not_in_the_regimen():
    bad = order("2007-10-20T09:00:00-07:00", "x", "lorazepam", "iv", scheduled(1, "q6h"), event_id="bad")
    fix = ev("entered_in_error", "2007-10-20T10:00:00-07:00", target_event_id="bad", reason="wrong patient",
             recorded_at="2007-10-20T10:00:00-07:00")
    events = base() + [bad, fix]
    assert meds_at(events, "2007-10-20T09:30:00-07:00") == []
    course = build_course(events, known_at=instant("2007-10-20T09:30:00-07:00"))
    assert [m["drug"] for m in regimen(course, instant("2007-10-20T09:30:00-07:00"), LA)["medications"]] == ["lorazepam"]
