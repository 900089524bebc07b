"""Shape, type and unit validation of every event type (mar.events via mar.recording.parse_line).

Each bad input must give a Problem that names the line, the field and the value.
Chart and catalog checks are in test_checks.py.
"""
from __future__ import annotations

import copy
import json

import pytest

from mar.events import BY_TYPE, EVENT_ADAPTER
from mar.recording import parse_line

T = "2007-10-16T15:10:00-07:00"
BASE = {"patient_id": "ref-001", "effective_at": T}
MG = lambda v: {"value": v, "unit": "mg"}  # noqa: E731

SCHEDULED = {"form": "scheduled", "dose": MG(10), "frequency": "bid"}
LISTED = {"drug": "memantine", "route": "po", "dosing": SCHEDULED, "indication": "neuropathic pain"}
DECISION = {"drug": "ketorolac", "action": "stop", "reason": "renal risk"}

GOOD: dict[str, dict] = {
    "patient_registered": {"timezone": "America/Los_Angeles", "display_name": "Reference patient"},
    "weight_recorded": {"weight": {"value": 91, "unit": "kg"}},
    "admitted": {"location": "oncology ward", "reason": "pain control", "decisions": [DECISION]},
    "transferred": {"to_location": "ICU", "from_location": "ward", "medication_list": [LISTED]},
    "discharged": {"destination": "nursing home", "medication_list": [LISTED], "decisions": [DECISION]},
    "readmitted": {"location": "ward", "from_facility": "nursing home", "medication_list": [LISTED]},
    "died": {},
    "home_medication_recorded": {"drug": "methadone", "route": "po", "source": "patient",
                                 "dosing": {"form": "scheduled", "dose": MG(40), "frequency": "tid"}},
    "medication_ordered": {"order_id": "ket-1", "drug": "ketamine", "route": "iv", "prescriber": "dr.a",
                           "dosing": {"form": "infusion", "rate": {"value": 55, "unit": "mcg/kg/h"}}},
    "order_changed": {"order_id": "ket-1", "reason": "taper", "rate": {"value": 27.5, "unit": "mcg/kg/h"}},
    "order_held": {"order_id": "ket-1", "reason": "sedated"},
    "order_resumed": {"order_id": "ket-1"},
    "order_discontinued": {"order_id": "ket-1", "reason": "pain controlled"},
    "dose_given": {"order_id": "hm-pca", "dose": {"value": 1.2, "unit": "mg"}, "route": "iv",
                   "kind": "pca_demand"},
    "infusion_rate_changed": {"order_id": "ket-1", "rate": {"value": 0, "unit": "mg/h"}, "reason": "stopped"},
    "dose_not_given": {"order_id": "mem-1", "status_reason": "refused"},
    "entered_in_error": {"target_event_id": "ref-001/dose/0412", "reason": "wrong patient"},
    "alert_acknowledged": {"alert_id": "omission:memantine", "reason": "reviewed with pharmacy"},
}

OTHER_FORMS = [
    {"form": "as_needed", "dose": MG(30), "frequency": "q4h", "max_daily": MG(120), "prn_reason": "pain"},
    {"form": "infusion", "rate": {"value": 5, "unit": "mg/h"}},
    {"form": "pca", "demand_dose": {"value": 1.2, "unit": "mg"}, "lockout_minutes": 6,
     "basal_rate": {"value": 1.2, "unit": "mg/h"}, "limit": MG(20), "limit_hours": 1},
    {"form": "pca", "demand_dose": {"value": 50, "unit": "mcg"}, "lockout_minutes": 10},
]


def event(event_type: str, /, **changes) -> dict:
    e = {"type": event_type, **BASE, **copy.deepcopy(GOOD[event_type])}
    e.update(changes)
    return e


def problems(e: dict, line: int = 7):
    cand, found = parse_line(json.dumps(e), line)
    assert (cand is None) == bool(found)
    return found


def only_problem(e: dict, line: int = 7):
    found = problems(e, line)
    assert len(found) == 1, found
    assert found[0].line == line
    return found[0]


def required_fields(kind: str) -> list[str]:
    return [n for n, f in BY_TYPE[kind].model_fields.items() if f.is_required() and n != "type"]


def test_every_type_has_a_good_example():
    assert set(GOOD) == set(BY_TYPE)


@pytest.mark.parametrize("kind", sorted(BY_TYPE))
def test_good_example_validates(kind):
    e = event(kind, recorded_at="2007-10-16T15:12:00-07:00", recorded_by="rn.lee",
              idempotency_key=f"ref-001/{kind}/1", note="free text", inferred=["note"])
    cand, found = parse_line(json.dumps(e), 1)
    assert found == []
    assert cand.data["type"] == kind
    assert cand.event_id == f"ref-001/{kind}/1"
    assert type(EVENT_ADAPTER.validate_python(e)) is BY_TYPE[kind]


@pytest.mark.parametrize("dosing", OTHER_FORMS, ids=lambda d: d["form"])
def test_every_dosing_form_validates(dosing):
    assert problems(event("medication_ordered", dosing=dosing)) == []
    assert problems(event("home_medication_recorded", dosing=dosing)) == []


def test_event_id_without_key_is_a_content_digest_independent_of_key_order():
    e = event("dose_given")
    reordered = dict(reversed(list(e.items())))
    a, _ = parse_line(json.dumps(e), 1)
    b, _ = parse_line(json.dumps(reordered), 2)
    assert a.event_id.startswith("sha256:") and a.event_id == b.event_id
    c, _ = parse_line(json.dumps(event("dose_given", dose=MG(1.3))), 3)
    assert c.event_id != a.event_id


def test_parsed_event_is_frozen():
    ev = EVENT_ADAPTER.validate_python(event("dose_given"))
    with pytest.raises(Exception):
        ev.order_id = "other"


# --- bad inputs common to every type ------------------------------------------------


@pytest.mark.parametrize(
    "kind,field", [(k, f) for k in sorted(BY_TYPE) for f in required_fields(k)]
)
def test_missing_required_field(kind, field):
    e = event(kind)
    del e[field]
    p = only_problem(e)
    assert (p.field, p.value, p.message) == (field, None, "required field is missing")
    assert str(p) == f"line 7: {field}=None: required field is missing"


@pytest.mark.parametrize("kind", sorted(BY_TYPE))
@pytest.mark.parametrize("naive", ["2007-10-16T15:10:00", "2007-10-16", "yesterday"])
def test_naive_or_unreadable_timestamp(kind, naive):
    p = only_problem(event(kind, effective_at=naive))
    assert (p.field, p.value) == ("effective_at", naive)
    assert "UTC offset" in p.message and "naive times are refused" in p.message


@pytest.mark.parametrize("kind", sorted(BY_TYPE))
def test_naive_recorded_at(kind):
    p = only_problem(event(kind, recorded_at="2007-10-16T15:12:00"))
    assert (p.field, p.value) == ("recorded_at", "2007-10-16T15:12:00")


@pytest.mark.parametrize("kind", sorted(BY_TYPE))
def test_unknown_field_is_refused_not_dropped(kind):
    p = only_problem(event(kind, dose_mg=10))
    assert (p.field, p.value) == ("dose_mg", 10)
    assert p.message == "unknown field (not part of this event type)"


@pytest.mark.parametrize("patient_id", ["", "ref 001", "ref/001", "x" * 65])
def test_bad_patient_id(patient_id):
    p = only_problem(event("died", patient_id=patient_id))
    assert (p.field, p.value) == ("patient_id", patient_id)


def test_unknown_type_lists_known_types():
    p = only_problem({"type": "dose_administered", **BASE})
    assert (p.field, p.value) == ("type", "dose_administered")
    assert "dose_given" in p.message


@pytest.mark.parametrize("text,why", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "an event must be a JSON object"),
    ('"dose_given"', "an event must be a JSON object"),
])
def test_line_that_is_not_an_event(text, why):
    cand, found = parse_line(text, 4)
    assert cand is None and len(found) == 1
    assert (found[0].line, found[0].field) == (4, "(line)")
    assert why in found[0].message and found[0].value == text


def test_every_problem_of_a_line_is_reported():
    e = event("dose_given", effective_at="2007-10-16T15:10", kind="push",
              dose={"value": -1, "unit": "mL"})
    found = problems(e)
    assert {(p.field, p.value) for p in found} == {
        ("effective_at", "2007-10-16T15:10"), ("kind", "push"),
        ("dose.value", -1), ("dose.unit", "mL"),
    }


# --- units that do not fit the form ---------------------------------------------------


WRONG_UNITS = [
    ("dose_given", {"dose": {"value": 1.2, "unit": "mg/h"}}, "dose.unit", "mg/h", "a dose"),
    ("dose_given", {"dose": {"value": 1.2, "unit": "mL"}}, "dose.unit", "mL", "a dose"),
    ("infusion_rate_changed", {"rate": {"value": 5, "unit": "mg"}}, "rate.unit", "mg", "a rate"),
    ("order_changed", {"rate": {"value": 5, "unit": "mcg"}}, "rate.unit", "mcg", "a rate"),
    ("order_changed", {"dose": {"value": 5, "unit": "mg/h"}}, "dose.unit", "mg/h", "a dose"),
    ("order_changed", {"basal_rate": {"value": 1, "unit": "mg"}}, "basal_rate.unit", "mg", "a rate"),
    ("weight_recorded", {"weight": {"value": 91, "unit": "mg"}}, "weight.unit", "mg", "a body weight"),
    ("medication_ordered", {"dosing": {"form": "infusion", "rate": MG(5)}},
     "dosing.rate.unit", "mg", "a rate"),
    ("medication_ordered", {"dosing": {"form": "scheduled", "dose": {"value": 5, "unit": "mg/h"},
                                       "frequency": "bid"}}, "dosing.dose.unit", "mg/h", "a dose"),
    ("medication_ordered", {"dosing": {"form": "pca", "demand_dose": {"value": 1, "unit": "mg/h"},
                                       "lockout_minutes": 6}}, "dosing.demand_dose.unit", "mg/h", "a dose"),
    ("home_medication_recorded", {"dosing": {"form": "as_needed", "dose": MG(30), "frequency": "q4h",
                                             "max_daily": {"value": 120, "unit": "mg/day"}}},
     "dosing.max_daily.unit", "mg/day", "a dose"),
    ("discharged", {"medication_list": [{**LISTED, "dosing": {"form": "infusion", "rate": MG(5)}}]},
     "medication_list[0].dosing.rate.unit", "mg", "a rate"),
]


@pytest.mark.parametrize("kind,changes,field,value,what", WRONG_UNITS,
                         ids=[f"{w[0]}-{w[2]}-{w[3]}" for w in WRONG_UNITS])
def test_unit_that_does_not_fit(kind, changes, field, value, what):
    p = only_problem(event(kind, **changes))
    assert (p.field, p.value) == (field, value)
    assert p.message.startswith(f"unit {value!r} does not fit {what}; use one of ")


def test_amount_without_unit():
    p = only_problem(event("dose_given", dose=10))
    assert (p.field, p.value) == ("dose", 10)
    assert p.message == 'an amount needs its unit: an object such as {"value": 10, "unit": "mg"}'


# --- zero, negative, non-numbers --------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, -0.5])
@pytest.mark.parametrize("kind,changes,field", [
    ("dose_given", lambda v: {"dose": MG(v)}, "dose.value"),
    ("weight_recorded", lambda v: {"weight": {"value": v, "unit": "kg"}}, "weight.value"),
    ("order_changed", lambda v: {"dose": MG(v)}, "dose.value"),
    ("order_changed", lambda v: {"rate": {"value": v, "unit": "mg/h"}}, "rate.value"),
    ("medication_ordered", lambda v: {"dosing": {"form": "infusion", "rate": {"value": v, "unit": "mg/h"}}},
     "dosing.rate.value"),
    ("medication_ordered", lambda v: {"dosing": {**SCHEDULED, "dose": MG(v)}}, "dosing.dose.value"),
    ("medication_ordered", lambda v: {"dosing": {**OTHER_FORMS[2], "lockout_minutes": v}},
     "dosing.lockout_minutes"),
    ("discharged", lambda v: {"medication_list": [{**LISTED, "dosing": {**SCHEDULED, "dose": MG(v)}}]},
     "medication_list[0].dosing.dose.value"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_zero_or_negative_amount(kind, changes, field, value):
    p = only_problem(event(kind, **changes(value)))
    assert (p.field, p.value) == (field, value)
    assert p.message == "must be greater than 0"


def test_rate_change_to_zero_means_stopped_but_negative_is_refused():
    assert problems(event("infusion_rate_changed", rate={"value": 0, "unit": "mcg/kg/h"})) == []
    assert problems(event("order_changed", basal_rate={"value": 0, "unit": "mg/h"})) == []
    p = only_problem(event("infusion_rate_changed", rate={"value": -2, "unit": "mg/h"}))
    assert (p.field, p.value, p.message) == ("rate.value", -2, "must be greater than or equal to 0")


def test_amount_that_is_not_a_number():
    p = only_problem(event("dose_given", dose={"value": "ten", "unit": "mg"}))
    assert (p.field, p.value) == ("dose.value", "ten")


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_amount_is_refused(value):
    # JSON cannot carry these, but an event built in Python (FHIR import) can
    cand, found = parse_line(event("dose_given", dose={"value": value, "unit": "mg"}), 3)
    assert cand is None
    assert [(p.line, p.field, p.message) for p in found] == [(3, "dose.value", "must be a finite number")]


def test_lockout_above_four_hours_is_refused():
    p = only_problem(event("medication_ordered", dosing={**OTHER_FORMS[2], "lockout_minutes": 600}))
    assert (p.field, p.value) == ("dosing.lockout_minutes", 600)


# --- enums ------------------------------------------------------------------------------


WRONG_ENUMS = [
    ("dose_given", {"kind": "push"}, "kind", "push"),
    ("dose_given", {"kind": "PCA_DEMAND"}, "kind", "PCA_DEMAND"),
    ("dose_not_given", {"status_reason": "asleep"}, "status_reason", "asleep"),
    ("discharged", {"decisions": [{**DECISION, "action": "drop"}]}, "decisions[0].action", "drop"),
    ("admitted", {"decisions": [{**DECISION, "action": "pause"}]}, "decisions[0].action", "pause"),
    ("medication_ordered", {"dosing": {**OTHER_FORMS[2], "limit_hours": 2}}, "dosing.limit_hours", 2),
    ("medication_ordered", {"dosing": {"form": "bolus", "dose": MG(1)}}, "dosing.form", "bolus"),
    ("medication_ordered", {"dosing": {"dose": MG(1), "frequency": "bid"}}, "dosing.form", None),
    ("readmitted", {"medication_list": [{**LISTED, "dosing": {"form": "prn", "dose": MG(1)}}]},
     "medication_list[0].dosing.form", "prn"),
]


@pytest.mark.parametrize("kind,changes,field,value", WRONG_ENUMS, ids=[f"{w[0]}-{w[2]}" for w in WRONG_ENUMS])
def test_wrong_enum_value(kind, changes, field, value):
    p = only_problem(event(kind, **changes))
    assert (p.field, p.value) == (field, value)
    assert p.message.startswith(("must be", "unknown dosing form", "required field is missing; use one of"))


def test_dosing_form_message_lists_the_forms():
    p = only_problem(event("medication_ordered", dosing={"form": "bolus", "dose": MG(1)}))
    assert p.message == "unknown dosing form; use one of scheduled, as_needed, infusion, pca"


# --- required text is not empty -----------------------------------------------------------


@pytest.mark.parametrize("kind,field", [
    ("order_discontinued", "reason"), ("order_held", "reason"), ("entered_in_error", "reason"),
    ("order_changed", "reason"), ("alert_acknowledged", "reason"), ("medication_ordered", "prescriber"),
    ("medication_ordered", "drug"), ("dose_given", "order_id"), ("discharged", "destination"),
    ("patient_registered", "timezone"), ("entered_in_error", "target_event_id"),
])
def test_required_text_must_not_be_empty(kind, field):
    p = only_problem(event(kind, **{field: ""}))
    assert (p.field, p.value, p.message) == (field, "", "must not be empty")


def test_discontinue_reason_null_is_refused():
    p = only_problem(event("order_discontinued", reason=None))
    assert (p.field, p.value) == ("reason", None)


def test_empty_decision_reason_is_refused():
    p = only_problem(event("discharged", decisions=[{**DECISION, "reason": ""}]))
    assert (p.field, p.value, p.message) == ("decisions[0].reason", "", "must not be empty")
