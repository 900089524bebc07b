"""Chart and catalog checks (mar.checks) through the one write path, with a fixed clock.

Every refusal must name the field and the value, and write nothing: the patient's
stream is compared before and after.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from mar.errors import InvalidEvents, WriteRefused
from mar.recording import Recorder
from mar.store import EventStore

PID = "ref-001"
NOW = datetime.fromisoformat("2007-10-20T12:00:00-07:00")


def at(day: int, hhmm: str) -> str:
    """Clinical time on October `day` 2007, Seattle (PDT, -07:00)."""
    return f"2007-10-{day:02d}T{hhmm}:00-07:00"


MG = lambda v, u="mg": {"value": v, "unit": u}  # noqa: E731

REGISTERED = {"type": "patient_registered", "timezone": "America/Los_Angeles", "effective_at": at(14, "08:00")}
WEIGHT = {"type": "weight_recorded", "weight": MG(91, "kg"), "effective_at": at(14, "09:00")}
ADMITTED = {"type": "admitted", "location": "oncology", "effective_at": at(14, "10:00")}


def ordered(order_id: str, drug: str, route: str, dosing: dict, when: str = at(15, "10:00")) -> dict:
    return {"type": "medication_ordered", "order_id": order_id, "drug": drug, "route": route,
            "dosing": dosing, "prescriber": "dr.pain", "effective_at": when}


ORDERS = [
    ordered("hm-inf", "hydromorphone", "iv", {"form": "infusion", "rate": MG(5, "mg/h")}),
    ordered("hm-pca", "hydromorphone", "iv", {"form": "pca", "demand_dose": MG(1.2), "lockout_minutes": 6,
                                              "basal_rate": MG(1.2, "mg/h")}),
    ordered("mem-1", "memantine", "po", {"form": "scheduled", "dose": MG(5), "frequency": "bid"}),
    ordered("oxy-prn", "oxycodone", "po", {"form": "as_needed", "dose": MG(30), "frequency": "q4h"}),
    ordered("fen-inf", "fentanyl", "iv", {"form": "infusion", "rate": MG(50, "mcg/h")}),
]


def given(order_id: str, dose: dict, kind: str, route: str = "iv", when: str = at(16, "09:00")) -> dict:
    return {"type": "dose_given", "order_id": order_id, "dose": dose, "route": route, "kind": kind,
            "effective_at": when}


class Chart:
    """A recorder with a fixed clock over a fresh store, and helpers to record and refuse."""

    def __init__(self, store):
        self.store = store
        self.recorder = Recorder(store, "rn.test", clock=lambda: NOW)

    def record(self, *events: dict, patient: str = PID):
        return self.recorder.record([(n, {"patient_id": patient, **e}) for n, e in enumerate(events, 1)])

    def event_ids(self, patient: str = PID) -> list[str]:
        return [r.data["event_id"] for r in self.store.stream(patient)]

    def refuse(self, *events: dict, patient: str = PID) -> list:
        """Record a batch that must be refused; return its problems, check nothing was written."""
        before = self.event_ids(patient)
        with pytest.raises(InvalidEvents) as info:
            self.record(*events, patient=patient)
        assert self.event_ids(patient) == before
        assert "nothing written" in str(info.value)
        return info.value.problems

    def refuse_one(self, event: dict, field: str, value, *phrases: str, patient: str = PID):
        problems = self.refuse(event, patient=patient)
        assert len(problems) == 1, problems
        p = problems[0]
        assert (p.line, p.field, p.value) == (1, field, value), p
        for phrase in phrases:
            assert phrase in p.message, p
        return p


@pytest.fixture
def store(tmp_path):
    """The checks do not depend on the backend: one SQLite file, also when PostgreSQL is tested."""
    with EventStore(str(tmp_path / "mar.db")) as s:
        yield s


@pytest.fixture
def empty(store) -> Chart:
    return Chart(store)


@pytest.fixture
def chart(store) -> Chart:
    c = Chart(store)
    c.record(REGISTERED, WEIGHT, ADMITTED, *ORDERS)
    return c


def test_the_base_chart_accepts_a_valid_dose_of_each_kind(chart):
    summary = chart.record(
        given("hm-inf", MG(2), "bolus"),
        given("hm-pca", MG(1.2), "pca_demand"),
        given("hm-pca", MG(2), "bolus"),
        given("mem-1", MG(5), "scheduled", route="po"),
        given("oxy-prn", MG(30), "as_needed", route="by mouth"),
        given("fen-inf", MG(50, "mcg"), "bolus"),
    )
    assert (summary.added, summary.already_stored) == (6, 0)
    assert len(chart.event_ids()) == 3 + len(ORDERS) + 6


# --- reference data ---------------------------------------------------------------


def test_unknown_drug(chart):
    chart.refuse_one(ordered("x-1", "hydromorphine", "iv", {"form": "infusion", "rate": MG(5, "mg/h")}),
                     "drug", "hydromorphine", "unknown drug", "MAR_CATALOG")


def test_unknown_drug_in_a_discharge_list_names_the_line(chart):
    listed = {"drug": "memantin", "route": "po", "dosing": {"form": "scheduled", "dose": MG(10), "frequency": "bid"}}
    chart.refuse_one({"type": "discharged", "destination": "nursing home", "medication_list": [listed],
                      "effective_at": at(18, "10:00")},
                     "medication_list[0].drug", "memantin", "unknown drug")


def test_unknown_route(chart):
    chart.refuse_one(ordered("x-1", "morphine", "intrathecal", {"form": "infusion", "rate": MG(1, "mg/h")}),
                     "route", "intrathecal", "unknown route", "iv")


def test_route_not_allowed_for_the_drug(chart):
    chart.refuse_one(ordered("x-1", "memantine", "iv", {"form": "scheduled", "dose": MG(5), "frequency": "bid"}),
                     "route", "iv", "memantine is not given by this route", "routes: po")


def test_route_synonym_is_accepted(chart):
    chart.record(ordered("x-1", "memantine", "oral", {"form": "scheduled", "dose": MG(5), "frequency": "bid"}))


@pytest.mark.parametrize("form", ["scheduled", "as_needed"])
def test_unknown_frequency(chart, form):
    chart.refuse_one(ordered("x-1", "oxycodone", "po", {"form": form, "dose": MG(10), "frequency": "q5h"}),
                     "dosing.frequency", "q5h", "unknown frequency", "bid")


def test_as_needed_needs_a_frequency_with_an_interval(chart):
    chart.refuse_one(ordered("x-1", "oxycodone", "po", {"form": "as_needed", "dose": MG(10), "frequency": "once"}),
                     "dosing.frequency", "once", "minimum interval")


def test_frequency_change_to_an_unknown_frequency(chart):
    chart.refuse_one({"type": "order_changed", "order_id": "mem-1", "frequency": "twice a fortnight",
                      "reason": "x", "effective_at": at(16, "10:00")},
                     "frequency", "twice a fortnight", "unknown frequency")


def test_daily_maximum_below_one_dose(chart):
    chart.refuse_one(ordered("x-1", "oxycodone", "po", {"form": "as_needed", "dose": MG(30), "frequency": "q4h",
                                                        "max_daily": MG(20)}),
                     "dosing.max_daily", "20 mg", "smaller than one dose")


def test_pca_limit_needs_its_hours(chart):
    chart.refuse_one(ordered("x-1", "hydromorphone", "iv", {"form": "pca", "demand_dose": MG(1),
                                                            "lockout_minutes": 6, "limit": MG(20)}),
                     "dosing.limit_hours", None, "limit_hours (1 or 4)")


# --- weight-based rates -------------------------------------------------------------


KETAMINE = {"form": "infusion", "rate": MG(55, "mcg/kg/h")}


def test_weight_based_rate_without_any_weight(empty):
    empty.record(REGISTERED, ADMITTED)
    empty.refuse_one(ordered("ket-1", "ketamine", "iv", KETAMINE),
                     "dosing.rate", "55 mcg/kg/h", "needs a body weight recorded before it")


def test_weight_based_rate_with_weight_recorded_only_later(empty):
    later_weight = {**WEIGHT, "effective_at": at(16, "09:00")}
    empty.record(REGISTERED, ADMITTED, later_weight)
    empty.refuse_one(ordered("ket-1", "ketamine", "iv", KETAMINE, when=at(15, "14:00")),
                     "dosing.rate", "55 mcg/kg/h", "needs a body weight")
    empty.record(ordered("ket-1", "ketamine", "iv", KETAMINE, when=at(16, "14:00")))


def test_weight_in_the_same_batch_before_the_order_is_enough(empty):
    empty.record(REGISTERED, ADMITTED, WEIGHT, ordered("ket-1", "ketamine", "iv", KETAMINE))


def test_weight_based_rate_change_without_weight(empty):
    empty.record(REGISTERED, ADMITTED, ordered("ket-1", "ketamine", "iv", {"form": "infusion", "rate": MG(5, "mg/h")}))
    empty.refuse_one({"type": "infusion_rate_changed", "order_id": "ket-1", "rate": MG(27.5, "mcg/kg/h"),
                      "effective_at": at(16, "10:00")},
                     "rate", "27.5 mcg/kg/h", "needs a body weight")
    empty.refuse_one({"type": "order_changed", "order_id": "ket-1", "rate": MG(27.5, "mcg/kg/h"),
                      "reason": "taper", "effective_at": at(16, "10:00")},
                     "rate", "27.5 mcg/kg/h", "needs a body weight")


def test_weight_corrected_in_error_no_longer_counts(chart):
    weight_id = chart.event_ids()[1]
    chart.record({"type": "entered_in_error", "target_event_id": weight_id, "reason": "wrong patient",
                  "effective_at": at(16, "08:00")})
    chart.refuse_one(ordered("ket-1", "ketamine", "iv", KETAMINE, when=at(16, "10:00")),
                     "dosing.rate", "55 mcg/kg/h", "needs a body weight")


def test_implausible_body_weight(chart):
    chart.refuse_one({**WEIGHT, "weight": MG(910, "kg")}, "weight", "910 kg", "implausible body weight")


# --- absurd amounts -----------------------------------------------------------------


def test_ten_grams_of_hydromorphone(chart):
    chart.refuse_one(given("hm-inf", MG(10, "g"), "bolus"), "dose", "10 g",
                     "above the catalog maximum single dose of hydromorphone (100 mg)", "mg vs mcg")


def test_fifty_mg_of_fentanyl_where_fifty_mcg_was_meant(chart):
    chart.record(given("fen-inf", MG(50, "mcg"), "bolus"))
    chart.refuse_one(given("fen-inf", MG(50), "bolus", when=at(16, "10:00")), "dose", "50 mg",
                     "maximum single dose of fentanyl (2 mg)", "check the unit (mg vs mcg)")


def test_absurd_dose_in_an_order(chart):
    chart.refuse_one(ordered("x-1", "oxycodone", "po", {"form": "scheduled", "dose": MG(3, "g"), "frequency": "bid"}),
                     "dosing.dose", "3 g", "maximum single dose of oxycodone")


def test_absurd_rate(chart):
    chart.refuse_one({"type": "infusion_rate_changed", "order_id": "fen-inf", "rate": MG(50, "mg/h"),
                      "effective_at": at(16, "10:00")},
                     "rate", "50 mg/h", "50 mg/h is above the catalog maximum rate of fentanyl (2 mg/h)")


def test_absurd_weight_based_rate_uses_the_weight(chart):
    # 55 mg/kg/h (mg for mcg) at 91 kg is 5005 mg/h of ketamine
    chart.refuse_one(ordered("ket-1", "ketamine", "iv", {"form": "infusion", "rate": MG(55, "mg/kg/h")}),
                     "dosing.rate", "55 mg/kg/h", "5005 mg/h is above the catalog maximum rate of ketamine")


def test_absurd_order_change(chart):
    chart.refuse_one({"type": "order_changed", "order_id": "hm-pca", "demand_dose": MG(1.2, "g"),
                      "reason": "titration", "effective_at": at(16, "10:00")},
                     "demand_dose", "1.2 g", "maximum single dose of hydromorphone")


# --- doses against orders -------------------------------------------------------------


def test_dose_against_an_unknown_order(chart):
    chart.refuse_one(given("hm-infusion", MG(2), "bolus"), "order_id", "hm-infusion",
                     f"no order with this id for patient {PID}")


def test_dose_against_another_patients_order(chart):
    chart.record(REGISTERED, ADMITTED, patient="ref-002")
    chart.refuse_one(given("hm-inf", MG(2), "bolus"), "order_id", "hm-inf", "no order", patient="ref-002")


def test_dose_against_a_discontinued_order(chart):
    chart.record({"type": "order_discontinued", "order_id": "mem-1", "reason": "ineffective",
                  "effective_at": at(16, "08:00")})
    chart.refuse_one(given("mem-1", MG(5), "scheduled", route="po"), "order_id", "mem-1",
                     "order mem-1 (memantine) was discontinued before this time")
    # a dose charted late, given before the stop, is fine
    chart.record(given("mem-1", MG(5), "scheduled", route="po", when=at(15, "21:00")))


def test_dose_against_a_held_order_and_after_resume(chart):
    chart.record({"type": "order_held", "order_id": "mem-1", "reason": "sedated", "effective_at": at(16, "08:00")})
    chart.refuse_one(given("mem-1", MG(5), "scheduled", route="po"), "order_id", "mem-1", "was on hold")
    chart.record({"type": "dose_not_given", "order_id": "mem-1", "status_reason": "held",
                  "effective_at": at(16, "09:00")})
    chart.record({"type": "order_resumed", "order_id": "mem-1", "effective_at": at(16, "20:00")})
    chart.record(given("mem-1", MG(5), "scheduled", route="po", when=at(16, "21:00")))


def test_dose_against_a_not_yet_started_order(chart):
    p = chart.refuse_one(given("mem-1", MG(5), "scheduled", route="po", when=at(15, "09:00")),
                         "effective_at", at(15, "09:00"), "order mem-1 (memantine) had not started yet")
    assert "2007-10-15T17:00:00+00:00" in p.message


def test_discontinued_order_corrected_in_error_is_active_again(chart):
    chart.record({"type": "order_discontinued", "order_id": "mem-1", "reason": "wrong order",
                  "idempotency_key": "dc-1", "effective_at": at(16, "08:00")})
    chart.record({"type": "entered_in_error", "target_event_id": "dc-1", "reason": "discontinued the wrong order",
                  "effective_at": at(16, "08:30")})
    chart.record(given("mem-1", MG(5), "scheduled", route="po"))


@pytest.mark.parametrize("order_id,kind,route", [
    ("mem-1", "pca_demand", "po"),
    ("mem-1", "bolus", "po"),
    ("mem-1", "as_needed", "po"),
    ("hm-inf", "scheduled", "iv"),
    ("hm-inf", "pca_demand", "iv"),
    ("oxy-prn", "scheduled", "po"),
    ("hm-pca", "as_needed", "iv"),
])
def test_dose_kind_that_does_not_fit_the_order_form(chart, order_id, kind, route):
    form = {"mem-1": "scheduled", "hm-inf": "infusion", "oxy-prn": "as_needed", "hm-pca": "pca"}[order_id]
    chart.refuse_one(given(order_id, MG(1), kind, route=route), "kind", kind,
                     f"a {kind} dose does not fit a {form} order")


def test_dose_by_another_route_than_the_order(chart):
    chart.refuse_one(given("hm-inf", MG(2), "bolus", route="sc"), "route", "sc",
                     "differs from the order's route 'iv'")


def test_dose_route_synonym_matches_the_order_written_with_a_synonym(chart):
    chart.record(ordered("mem-2", "memantine", "by mouth", {"form": "scheduled", "dose": MG(5), "frequency": "bid"}))
    chart.record(given("mem-2", MG(5), "scheduled", route="po"))


def test_order_change_that_does_not_fit_the_form(chart):
    chart.refuse_one({"type": "order_changed", "order_id": "mem-1", "rate": MG(1, "mg/h"), "reason": "x",
                      "effective_at": at(16, "10:00")},
                     "rate", {"value": 1.0, "unit": "mg/h"}, "does not fit a scheduled order")


def test_order_change_that_changes_nothing(chart):
    chart.refuse_one({"type": "order_changed", "order_id": "mem-1", "reason": "x", "effective_at": at(16, "10:00")},
                     "order_id", "mem-1", "must change at least one of")


def test_rate_change_on_a_scheduled_order(chart):
    chart.refuse_one({"type": "infusion_rate_changed", "order_id": "mem-1", "rate": MG(0, "mg/h"),
                      "effective_at": at(16, "10:00")},
                     "order_id", "mem-1", "is a scheduled order, not an infusion")


def test_duplicate_order_id(chart):
    chart.refuse_one(ordered("mem-1", "memantine", "po", {"form": "scheduled", "dose": MG(10), "frequency": "bid"},
                             when=at(17, "10:00")),
                     "order_id", "mem-1", "already exists")


def test_resume_an_order_that_is_not_held(chart):
    chart.refuse_one({"type": "order_resumed", "order_id": "mem-1", "effective_at": at(16, "10:00")},
                     "order_id", "mem-1", "not on hold")


def test_discontinue_twice(chart):
    chart.record({"type": "order_discontinued", "order_id": "mem-1", "reason": "x", "effective_at": at(16, "10:00")})
    chart.refuse_one({"type": "order_discontinued", "order_id": "mem-1", "reason": "y",
                      "effective_at": at(16, "11:00")},
                     "order_id", "mem-1", "already discontinued")


# --- transitions ------------------------------------------------------------------------


def test_discharge_of_a_patient_never_admitted(empty):
    empty.record(REGISTERED)
    empty.refuse_one({"type": "discharged", "destination": "home", "medication_list": [],
                      "effective_at": at(15, "10:00")},
                     "type", "discharged", "patient is not admitted at 2007-10-15T10:00:00-07:00")


def test_discharge_twice(chart):
    discharge = {"type": "discharged", "destination": "home", "medication_list": [], "effective_at": at(18, "10:00")}
    chart.record(discharge)
    chart.refuse_one({**discharge, "effective_at": at(18, "11:00")}, "type", "discharged", "not admitted")


def test_discharge_before_the_admission(chart):
    chart.refuse_one({"type": "discharged", "destination": "home", "medication_list": [],
                      "effective_at": at(14, "09:30")}, "type", "discharged", "not admitted")


def test_transfer_of_a_patient_not_admitted(empty):
    empty.record(REGISTERED)
    empty.refuse_one({"type": "transferred", "to_location": "ICU", "effective_at": at(15, "10:00")},
                     "type", "transferred", "not admitted")


def test_admission_of_an_admitted_patient(chart):
    chart.refuse_one({**ADMITTED, "effective_at": at(16, "10:00")}, "type", "admitted",
                     "patient is already admitted at 2007-10-16T10:00:00-07:00")


def test_readmission_without_discharge(chart):
    chart.refuse_one({"type": "readmitted", "location": "oncology", "effective_at": at(16, "10:00")},
                     "type", "readmitted", "already admitted")


def test_readmission_of_a_patient_never_admitted(empty):
    empty.record(REGISTERED)
    empty.refuse_one({"type": "readmitted", "location": "oncology", "effective_at": at(16, "10:00")},
                     "type", "readmitted", "never discharged (record admitted instead)")


def test_discharge_then_readmission(chart):
    chart.record({"type": "discharged", "destination": "nursing home", "medication_list": [],
                  "effective_at": at(18, "10:00")},
                 {"type": "readmitted", "location": "oncology", "from_facility": "nursing home",
                  "effective_at": at(19, "10:00")})


def test_discharge_list_naming_an_unknown_order(chart):
    listed = {"drug": "memantine", "route": "po", "order_id": "mem-9",
              "dosing": {"form": "scheduled", "dose": MG(10), "frequency": "bid"}}
    chart.refuse_one({"type": "discharged", "destination": "home", "medication_list": [listed],
                      "effective_at": at(18, "10:00")},
                     "medication_list[0].order_id", "mem-9", "no order with this id")


# --- death -------------------------------------------------------------------------------


AFTER_DEATH = [
    given("mem-1", MG(5), "scheduled", route="po", when=at(17, "09:00")),
    {**WEIGHT, "effective_at": at(17, "09:00")},
    ordered("x-1", "morphine", "iv", {"form": "infusion", "rate": MG(1, "mg/h")}, when=at(17, "09:00")),
    {"type": "order_discontinued", "order_id": "mem-1", "reason": "x", "effective_at": at(17, "09:00")},
    {"type": "discharged", "destination": "morgue", "medication_list": [], "effective_at": at(17, "09:00")},
    {"type": "died", "effective_at": at(17, "09:00")},
    {"type": "dose_not_given", "order_id": "mem-1", "status_reason": "refused", "effective_at": at(16, "20:00")},
]


@pytest.mark.parametrize("event", AFTER_DEATH, ids=[e["type"] for e in AFTER_DEATH])
def test_anything_after_death(chart, event):
    chart.record({"type": "died", "effective_at": at(16, "20:00")})
    problems = chart.refuse(event)
    p = [p for p in problems if p.field == "effective_at"]
    assert len(p) == 1 and p[0].value == event["effective_at"]
    assert p[0].message == "the patient died at 2007-10-17T03:00:00+00:00"


def test_late_charting_of_a_dose_given_before_death_is_accepted(chart):
    chart.record({"type": "died", "effective_at": at(16, "20:00")})
    chart.record(given("mem-1", MG(5), "scheduled", route="po", when=at(16, "09:00")))


def test_corrections_and_acknowledgements_after_death_are_accepted(chart):
    chart.record(given("mem-1", MG(5), "scheduled", route="po", when=at(16, "09:00")) | {"idempotency_key": "d-1"})
    chart.record({"type": "died", "effective_at": at(16, "20:00")})
    chart.record({"type": "entered_in_error", "target_event_id": "d-1", "reason": "charted on the wrong patient",
                  "effective_at": at(17, "09:00")},
                 {"type": "alert_acknowledged", "alert_id": "a-1", "reason": "reviewed",
                  "effective_at": at(17, "09:00")})


# --- clinical time ------------------------------------------------------------------------


def test_clinical_time_in_the_future(chart):
    future = (NOW + timedelta(minutes=3)).isoformat()
    chart.refuse_one(given("mem-1", MG(5), "scheduled", route="po", when=future),
                     "effective_at", future, "clinical time is in the future")


def test_small_clock_skew_is_accepted(chart):
    chart.record(given("mem-1", MG(5), "scheduled", route="po", when=(NOW + timedelta(minutes=1)).isoformat()))


def test_future_in_another_offset_is_still_the_future(chart):
    future = (NOW + timedelta(hours=1)).astimezone(datetime.fromisoformat("2007-01-01T00:00:00+09:00").tzinfo)
    chart.refuse_one(given("mem-1", MG(5), "scheduled", route="po", when=future.isoformat()),
                     "effective_at", future.isoformat(), "in the future")


def test_recorded_time_in_the_future(chart):
    future = (NOW + timedelta(days=1)).isoformat()
    chart.refuse_one(given("mem-1", MG(5), "scheduled", route="po") | {"recorded_at": future},
                     "recorded_at", future, "recorded time is in the future")


# --- corrections --------------------------------------------------------------------------


def test_entered_in_error_of_an_unknown_event(chart):
    chart.refuse_one({"type": "entered_in_error", "target_event_id": "ref-001/dose/9999", "reason": "x",
                      "effective_at": at(16, "10:00")},
                     "target_event_id", "ref-001/dose/9999", f"no event with this id for patient {PID}")


def test_entered_in_error_of_another_patients_event(chart):
    chart.record(REGISTERED | {"idempotency_key": "reg-2"}, patient="ref-002")
    chart.refuse_one({"type": "entered_in_error", "target_event_id": "reg-2", "reason": "x",
                      "effective_at": at(16, "10:00")}, "target_event_id", "reg-2", "no event with this id")


def test_entered_in_error_twice(chart):
    target = chart.event_ids()[-1]
    correction = {"type": "entered_in_error", "target_event_id": target, "reason": "duplicate order",
                  "effective_at": at(16, "10:00")}
    chart.record(correction)
    chart.refuse_one({**correction, "reason": "again"}, "target_event_id", target, "already entered in error")


def test_entered_in_error_twice_in_one_batch(chart):
    target = chart.event_ids()[-1]
    problems = chart.refuse(
        {"type": "entered_in_error", "target_event_id": target, "reason": "one", "effective_at": at(16, "10:00")},
        {"type": "entered_in_error", "target_event_id": target, "reason": "two", "effective_at": at(16, "10:01")},
    )
    assert [(p.line, p.field, p.value) for p in problems] == [(2, "target_event_id", target)]


def test_entered_in_error_of_a_correction(chart):
    chart.record({"type": "entered_in_error", "target_event_id": chart.event_ids()[-1], "reason": "x",
                  "idempotency_key": "eie-1", "effective_at": at(16, "10:00")})
    chart.refuse_one({"type": "entered_in_error", "target_event_id": "eie-1", "reason": "undo",
                      "effective_at": at(16, "11:00")},
                     "target_event_id", "eie-1", "a correction cannot itself be entered in error")


def test_corrected_order_no_longer_takes_doses(chart):
    order_id = chart.event_ids()[3 + 2]  # mem-1
    chart.record({"type": "entered_in_error", "target_event_id": order_id, "reason": "wrong patient",
                  "effective_at": at(16, "08:00")})
    chart.refuse_one(given("mem-1", MG(5), "scheduled", route="po"), "order_id", "mem-1", "no order")


# --- registration ----------------------------------------------------------------------------


@pytest.mark.parametrize("event", [ADMITTED, WEIGHT, given("mem-1", MG(5), "scheduled", route="po"),
                                   {"type": "died", "effective_at": at(16, "10:00")}],
                         ids=lambda e: e["type"])
def test_events_before_patient_registered(empty, event):
    empty.refuse_one(event, "patient_id", PID, "no patient registered with this id",
                     "record patient_registered first")


def test_registration_first_in_the_same_batch_is_enough(empty):
    assert empty.record(REGISTERED, ADMITTED).added == 2


def test_registered_twice(chart):
    chart.refuse_one({**REGISTERED, "effective_at": at(16, "10:00")}, "patient_id", PID, "already registered")


def test_unknown_time_zone(empty):
    empty.refuse_one({**REGISTERED, "timezone": "Pacific/Seattle"}, "timezone", "Pacific/Seattle",
                     "unknown IANA time zone")


# --- all or nothing, every problem -------------------------------------------------------------


def test_a_batch_reports_every_bad_event_and_writes_nothing(chart):
    problems = chart.refuse(
        given("mem-1", MG(5), "scheduled", route="po"),
        given("nope", MG(5), "scheduled", route="po"),
        given("hm-inf", MG(10, "g"), "bolus"),
        {"type": "dose_given", "order_id": "mem-1", "effective_at": "2007-10-16T09:00"},
        given("oxy-prn", MG(30), "as_needed", route="po"),
    )
    assert [(p.line, p.field) for p in problems] == [
        (2, "order_id"), (3, "dose"), (4, "effective_at"), (4, "dose"), (4, "route"), (4, "kind"),
    ]


def test_write_without_a_user_is_refused(store):
    with pytest.raises(WriteRefused, match="who is writing"):
        Recorder(store, None)
    with pytest.raises(WriteRefused):
        Recorder(store, "")


# --- transitions end orders (docs/event-format.md, "Transitions end orders") ----------------


DISCHARGE = {"type": "discharged", "destination": "nursing home", "medication_list": [],
             "effective_at": at(18, "10:00")}


def test_dose_against_an_order_ended_by_discharge(chart):
    chart.record(DISCHARGE)
    chart.refuse_one(given("mem-1", MG(5), "scheduled", route="po", when=at(18, "21:00")), "order_id", "mem-1",
                     "order mem-1 (memantine) ended with the discharge at 2007-10-18T17:00:00+00:00",
                     "this stay needs an order of its own")
    chart.record(given("mem-1", MG(5), "scheduled", route="po", when=at(18, "09:00")))  # charted late


def test_dose_after_readmission_against_the_previous_stays_order(chart):
    chart.record(DISCHARGE, {"type": "readmitted", "location": "oncology", "effective_at": at(19, "10:00")})
    chart.refuse_one(given("mem-1", MG(5), "scheduled", route="po", when=at(19, "21:00")), "order_id", "mem-1",
                     "ended with the discharge")
    chart.record(ordered("mem-2", "memantine", "po", {"form": "scheduled", "dose": MG(10), "frequency": "bid"},
                         when=at(19, "11:00")),
                 given("mem-2", MG(10), "scheduled", route="po", when=at(19, "21:00")))


def test_discharge_corrected_in_error_does_not_end_orders(chart):
    chart.record(DISCHARGE | {"idempotency_key": "dc-stay-1"})
    chart.record({"type": "entered_in_error", "target_event_id": "dc-stay-1", "reason": "charted too early",
                  "effective_at": at(18, "11:00")})
    chart.record(given("mem-1", MG(5), "scheduled", route="po", when=at(18, "21:00")))


def test_transfer_without_a_list_changes_no_order(chart):
    chart.record({"type": "transferred", "to_location": "ICU", "effective_at": at(16, "06:00")})
    chart.record(given("hm-inf", MG(2), "bolus"))
