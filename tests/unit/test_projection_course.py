"""The pure course model: orders over clinical time, rate segments, knowledge time."""
from __future__ import annotations

from datetime import date

import pytest

from projections.course import build_course
from projections.timeline import instant, zone
from projections.totals import amounts, course_inputs
from tests.unit.projection_events import (
    admitted, ev, given, infusion, mg, order, rate, registered, scheduled, weight,
)

LA = zone("America/Los_Angeles")
T = instant


def base():
    return [registered(), weight("2007-10-14T08:00:00-07:00", 91), admitted("2007-10-14T09:00:00-07:00")]


def test_weight_based_infusion_in_mg_per_h_at_the_current_weight():
    events = base() + [
        order("2007-10-16T14:00:00-07:00", "ket", "ketamine", "iv", infusion(55, "mcg/kg/h")),
        rate("2007-10-20T10:00:00-07:00", "ket", 27.5, "mcg/kg/h", "taper"),
        rate("2007-10-21T10:00:00-07:00", "ket", 13.8, "mcg/kg/h", "taper"),
        rate("2007-10-23T10:00:00-07:00", "ket", 36.8, "mcg/kg/h", "slower taper"),
        ev("order_discontinued", "2007-10-26T10:00:00-07:00", order_id="ket", reason="taper done"),
    ]
    course = build_course(events)
    got = [round(s.mg_per_h, 4) for s in course.segments]
    assert got == [5.005, 2.5025, 1.2558, 3.3488]
    assert course.segments[-1].end == T("2007-10-26T10:00:00-07:00")
    order_ = course.orders["ket"]
    assert order_.ended_by == "discontinued" and order_.end_reason == "taper done"


def test_a_new_weight_splits_a_weight_based_segment_but_not_a_fixed_rate():
    events = base() + [
        order("2007-10-16T00:00:00-07:00", "ket", "ketamine", "iv", infusion(100, "mcg/kg/h")),
        order("2007-10-16T00:00:00-07:00", "hm", "hydromorphone", "iv", infusion(2, "mg/h")),
        weight("2007-10-16T12:00:00-07:00", 80),
    ]
    course = build_course(events)
    ket = [(s.weight_kg, round(s.mg_per_h, 6)) for s in course.segments if s.order_id == "ket"]
    assert ket == [(91, 9.1), (80, 8.0)]
    assert len([s for s in course.segments if s.order_id == "hm"]) == 1


def test_hold_stops_the_rate_and_resume_returns_to_the_last_rate():
    events = base() + [
        order("2007-10-16T00:00:00-07:00", "hm", "hydromorphone", "iv", infusion(2, "mg/h")),
        rate("2007-10-16T02:00:00-07:00", "hm", 4, "mg/h"),
        ev("order_held", "2007-10-16T03:00:00-07:00", order_id="hm", reason="sedated"),
        ev("order_resumed", "2007-10-16T05:00:00-07:00", order_id="hm"),
        ev("order_discontinued", "2007-10-16T06:00:00-07:00", order_id="hm", reason="done"),
    ]
    course = build_course(events)
    doses, pieces = course_inputs(course)
    rows = amounts(doses, pieces, LA, None)
    # 2 h at 2 + 1 h at 4 + (held 2 h) + 1 h at 4 = 12 mg
    assert [(r.date, r.drug, r.amount_mg) for r in rows] == [("2007-10-16", "hydromorphone", 12.0)]
    state = course.orders["hm"].state_at(T("2007-10-16T04:00:00-07:00"))
    assert state.held and state.rate == mg(4, "mg/h")


def test_scheduled_order_state_at_a_clinical_time_and_its_last_change():
    events = base() + [
        order("2007-10-20T09:00:00-07:00", "mem", "memantine", "po", scheduled(5, "bid"), indication="pain"),
        ev("order_changed", "2007-10-22T09:00:00-07:00", order_id="mem", dose=mg(10), reason="titration"),
    ]
    course = build_course(events)
    mem = course.orders["mem"]
    assert mem.state_at(T("2007-10-21T09:00:00-07:00")).dosing["dose"] == mg(5)
    later = mem.state_at(T("2007-10-23T09:00:00-07:00"))
    assert later.dosing["dose"] == mg(10) and later.last_change.reason == "titration"
    assert not mem.active_at(T("2007-10-20T08:59:59-07:00"))


def test_discharge_ends_orders_and_its_list_is_active_until_readmission_then_death_ends_all():
    events = base() + [
        order("2007-10-20T09:00:00-07:00", "mem", "memantine", "po", scheduled(10, "bid")),
        order("2007-10-20T09:00:00-07:00", "met", "methadone", "po", scheduled(40, "tid")),
        ev("discharged", "2007-12-03T10:00:00-08:00", destination="nursing home",
           medication_list=[{"drug": "methadone", "route": "po", "dosing": scheduled(40, "tid"), "order_id": "met"}]),
        ev("readmitted", "2007-12-19T10:00:00-08:00", location="ward 5"),
        order("2007-12-19T11:00:00-08:00", "mem2", "memantine", "po", scheduled(10, "bid")),
        ev("died", "2008-02-04T10:00:00-08:00"),
    ]
    course = build_course(events)
    at_home = T("2007-12-09T12:00:00-08:00")
    assert course.active_orders(at_home) == []
    assert [(x.drug, x.source, x.order_id) for x in course.active_listed(at_home)] == [
        ("methadone", "discharge list", "met")]
    back = T("2008-01-03T12:00:00-08:00")
    assert [o.order_id for o in course.active_orders(back)] == ["mem2"]
    assert course.active_listed(back) == []
    after = T("2008-02-04T10:00:00-08:00")
    assert course.active_orders(after) == [] and course.active_listed(after) == []
    assert course.orders["mem2"].ended_by == "died"
    discharge = course.transitions[1]
    assert discharge.kind == "discharged" and sorted(discharge.active_orders_before) == ["mem", "met"]


def test_transfer_with_a_list_carries_named_orders_and_ends_the_others():
    events = base() + [
        order("2007-10-20T09:00:00-07:00", "mem", "memantine", "po", scheduled(10, "bid")),
        order("2007-10-20T09:00:00-07:00", "ktr", "ketorolac", "iv", scheduled(30, "q8h")),
        ev("transferred", "2007-10-21T09:00:00-07:00", to_location="rehab",
           medication_list=[{"drug": "memantine", "route": "po", "dosing": scheduled(10, "bid"), "order_id": "mem"}]),
        ev("transferred", "2007-10-22T09:00:00-07:00", to_location="ward 7"),
    ]
    course = build_course(events)
    assert [o.order_id for o in course.active_orders(T("2007-10-23T00:00:00-07:00"))] == ["mem"]
    assert course.orders["ktr"].ended_by == "transferred"


def test_entered_in_error_and_knowledge_time():
    hm = order("2007-10-16T00:00:00-07:00", "hm", "hydromorphone", "iv",
               {"form": "pca", "demand_dose": mg(1.2), "lockout_minutes": 6})
    wrong = given("2007-10-16T10:00:00-07:00", "hm", 1.2, kind="pca_demand", event_id="wrong")
    late = given("2007-10-16T11:00:00-07:00", "hm", 1.2, kind="pca_demand",
                 recorded_at="2007-10-16T17:00:00-07:00")
    fix = ev("entered_in_error", "2007-10-16T12:00:00-07:00", target_event_id="wrong", reason="wrong patient")
    events = base() + [hm, wrong, late, fix]

    def total(known_at=None, until=None):
        course = build_course(events, known_at=None if known_at is None else T(known_at))
        doses, pieces = course_inputs(course)
        return sum(r.amount_mg for r in amounts(doses, pieces, LA, None if until is None else T(until)))

    assert total() == pytest.approx(1.2)  # the error is gone, the late dose counts
    assert total(known_at="2007-10-16T11:30:00-07:00") == pytest.approx(1.2)  # error known, late one not yet
    assert total(known_at="2007-10-16T12:30:00-07:00") == pytest.approx(0)  # corrected, late one not yet
    assert total(known_at="2007-10-16T17:00:00-07:00") == pytest.approx(1.2)
    assert total(until="2007-10-16T10:30:00-07:00") == pytest.approx(0)  # as at: the error never counts


def test_voided_order_is_kept_aside_and_gives_no_segments():
    bad = order("2007-10-16T00:00:00-07:00", "hm", "hydromorphone", "iv", infusion(2, "mg/h"), event_id="bad")
    events = base() + [bad, ev("entered_in_error", "2007-10-16T01:00:00-07:00", target_event_id="bad",
                                reason="wrong drug")]
    course = build_course(events)
    assert course.orders == {} and "hm" in course.voided_orders and course.segments == []


def test_running_infusion_counts_up_to_the_clinical_time_asked():
    events = base() + [order("2007-10-16T00:00:00-07:00", "hm", "hydromorphone", "iv", infusion(2, "mg/h"))]
    course = build_course(events)
    assert course.segments[0].end is None
    doses, pieces = course_inputs(course)
    rows = amounts(doses, pieces, LA, T("2007-10-17T06:00:00-07:00"))
    assert [(r.date, r.amount_mg) for r in rows] == [("2007-10-16", 48.0), ("2007-10-17", 12.0)]
    assert amounts(doses, pieces, LA, None) == []  # no end and no horizon: nothing is claimed


@pytest.mark.parametrize("day, hours", [("2007-11-04", 25), ("2008-03-09", 23), ("2007-11-05", 24)])
def test_days_are_local_calendar_days_of_23_24_or_25_hours(day, hours):
    events = base() + [order("2007-10-16T00:00:00-07:00", "hm", "hydromorphone", "iv", infusion(1, "mg/h"))]
    doses, pieces = course_inputs(build_course(events))
    until = T("2008-04-01T00:00:00-07:00")
    d = date.fromisoformat(day)
    rows = amounts(doses, pieces, LA, until, first=d, last=d)
    assert [r.amount_mg for r in rows] == [pytest.approx(hours)]
    hourly = amounts(doses, pieces, LA, until, by="hour", first=d, last=d)
    assert len(hourly) == hours
    assert sum(r.amount_mg for r in hourly) == pytest.approx(hours)
    if hours == 25:
        assert [(r.hour, r.fold) for r in hourly[1:3]] == [(1, 0), (1, 1)]


def test_doses_fall_on_their_local_hour_and_day():
    events = base() + [
        order("2007-10-16T00:00:00-07:00", "ox", "oxycodone", "po",
              {"form": "as_needed", "dose": mg(30), "frequency": "q4h"}),
        given("2007-10-16T23:59:00-07:00", "ox", 30, route="po", kind="as_needed"),
        given("2007-10-17T06:59:00Z", "ox", 30, route="po", kind="as_needed"),  # 23:59 local
        given("2007-10-17T07:00:00Z", "ox", 30, route="po", kind="as_needed"),  # 00:00 local
    ]
    doses, pieces = course_inputs(build_course(events))
    rows = amounts(doses, pieces, LA, None, by="hour")
    assert [(r.date, r.hour, r.drug, r.route, r.amount_mg) for r in rows] == [
        ("2007-10-16", 23, "oxycodone", "po", 60.0), ("2007-10-17", 0, "oxycodone", "po", 30.0)]
