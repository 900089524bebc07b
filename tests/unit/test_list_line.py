"""mar.list_line (the medication-list line checked without pydantic) against the model it
stands in for, mar.events.ListedMedication: whatever it accepts, the model accepts with the
same JSON; whatever the model refuses, it refuses; every canonical line it accepts."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mar.events import PCA, AsNeeded, Dose, Infusion, ListedMedication, Rate, Scheduled
from mar.list_line import FORMS, NotAListLine, listed_medication
from mar.units import MASS_TO_MG, RATE_TO_MG_PER_H


def by_model(data) -> dict | None:
    try:
        return ListedMedication.model_validate(data).model_dump(mode="json", exclude_none=True)
    except ValidationError:
        return None


def by_light(data) -> dict | None:
    try:
        return listed_medication(data)
    except NotAListLine:
        return None


def same(a: dict, b: dict) -> bool:
    """Equal as JSON text, so that 10 and 10.0 differ."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# --- generated lines ---------------------------------------------------------------------------

names = st.text(min_size=1, max_size=12) | st.sampled_from(["x" * 500, "\u00e9" * 500, " "])
free_text = st.none() | st.text(max_size=12)
positive = (st.floats(min_value=1e-9, max_value=1e12, allow_nan=False) | st.integers(1, 10**6)
            | st.sampled_from([5e-324, 1.7e308, 0.5, 10]))


def amount(units) -> st.SearchStrategy:
    return st.fixed_dictionaries({"value": positive, "unit": st.sampled_from(sorted(units))})


def optional(strategy) -> st.SearchStrategy:
    return st.none() | strategy


dosings = st.one_of(
    st.fixed_dictionaries({"form": st.just("scheduled"), "dose": amount(MASS_TO_MG), "frequency": names}),
    st.fixed_dictionaries({"form": st.just("as_needed"), "dose": amount(MASS_TO_MG), "frequency": names},
                          optional={"max_daily": optional(amount(MASS_TO_MG)), "prn_reason": free_text}),
    st.fixed_dictionaries({"form": st.just("infusion"), "rate": amount(RATE_TO_MG_PER_H)}),
    st.fixed_dictionaries({"form": st.just("pca"), "demand_dose": amount(MASS_TO_MG),
                           "lockout_minutes": st.floats(1e-3, 240) | st.integers(1, 240)},
                          optional={"basal_rate": optional(amount(RATE_TO_MG_PER_H)),
                                    "limit": optional(amount(MASS_TO_MG)),
                                    "limit_hours": st.sampled_from([None, 1, 4])}),
)
lines = st.fixed_dictionaries({"drug": names, "route": names, "dosing": dosings},
                              optional={"indication": free_text, "order_id": free_text, "note": free_text})

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.just(10**400), st.floats(), st.text(max_size=3),
    st.sampled_from(["", "x" * 501, "10", "1", "4"] + list(FORMS) + sorted(MASS_TO_MG) + sorted(RATE_TO_MG_PER_H)),
    st.lists(st.integers(), max_size=1), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


def paths(node, here=()):
    """Every (path, value) of a nested dict."""
    for key, value in node.items():
        yield here + (key,), value
        if isinstance(value, dict):
            yield from paths(value, here + (key,))


def mutate(line: dict, path: tuple, how: str, value) -> dict:
    line = json.loads(json.dumps(line))
    *parents, key = path
    node = line
    for p in parents:
        node = node[p]
    if how == "drop":
        del node[key]
    elif how == "add":
        node[key + "_extra"] = value
    else:
        node[key] = value
    return line


@settings(max_examples=200, deadline=None)
@given(line=lines)
def test_every_valid_line_is_accepted_as_the_model_dumps_it(line):
    dumped = by_model(line)
    assert dumped is not None  # the strategy makes valid lines only
    assert same(listed_medication(line), dumped)
    assert same(listed_medication(dumped), dumped)


@settings(max_examples=600, deadline=None)
@given(line=lines, data=st.data())
def test_a_corrupted_line_is_refused_whenever_the_model_refuses_it(line, data):
    path, _ = data.draw(st.sampled_from(list(paths(line))))
    how = data.draw(st.sampled_from(["replace", "drop", "add"]))
    broken = mutate(line, path, how, data.draw(junk))
    model, light = by_model(broken), by_light(broken)
    if light is not None:
        assert model is not None and same(light, model), (broken, model, light)
    if model is not None and light is None:  # only lax spellings the model coerces
        assert same(listed_medication(model), model)


@given(data=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                             st.sampled_from(["drug", "route", "dosing", "form", "dose", "value", "unit", "x"]),
                             inner, max_size=4), max_leaves=12))
@settings(max_examples=300, deadline=None)
def test_arbitrary_json_is_refused_unless_the_model_accepts_it(data):
    light = by_light(data)
    if light is not None:
        assert same(light, by_model(data))


# --- named cases -------------------------------------------------------------------------------

METHADONE = {"drug": "methadone", "route": "po",
             "dosing": {"form": "scheduled", "dose": {"value": 10, "unit": "mg"}, "frequency": "q8h"}}


def with_(path: str, value, line=METHADONE) -> dict:
    return mutate(line, tuple(path.split(".")), "replace", value)


@pytest.mark.parametrize("broken, field", [
    (with_("drug", ""), "drug"),
    (with_("drug", "x" * 501), "drug"),
    (with_("route", None), "route"),
    (with_("dosing.dose.value", 0), "dosing.dose.value"),
    (with_("dosing.dose.value", -1.5), "dosing.dose.value"),
    (with_("dosing.dose.value", float("nan")), "dosing.dose.value"),
    (with_("dosing.dose.value", 10**400), "dosing.dose.value"),
    (with_("dosing.dose.unit", "mL"), "dosing.dose.unit"),
    (with_("dosing.dose.unit", "mg/h"), "dosing.dose.unit"),
    (with_("dosing.form", "continuous"), "dosing.form"),
    (with_("dosing.frequency", ""), "dosing.frequency"),
    (with_("note", 5), "note"),
    (mutate(METHADONE, ("dosing", "dose"), "add", 1), "dosing.dose_extra"),
    (mutate(METHADONE, ("drug",), "add", None), "drug_extra"),
    (mutate(METHADONE, ("dosing", "frequency"), "drop", None), "dosing.frequency"),
    ({"drug": "x", "route": "iv", "dosing": {"form": "infusion", "rate": {"value": 1, "unit": "mg"}}},
     "dosing.rate.unit"),
    ({"drug": "x", "route": "iv", "dosing": {"form": "pca", "demand_dose": {"value": 1, "unit": "mg"},
                                             "lockout_minutes": 241}}, "dosing.lockout_minutes"),
    ({"drug": "x", "route": "iv", "dosing": {"form": "pca", "demand_dose": {"value": 1, "unit": "mg"},
                                             "lockout_minutes": 10, "limit_hours": 2}}, "dosing.limit_hours"),
    ([METHADONE], "line"),
])
def test_named_refusals_of_both(broken, field):
    assert by_model(broken) is None
    with pytest.raises(NotAListLine) as caught:
        listed_medication(broken)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}=")


def test_lax_spellings_the_model_coerces_are_refused():
    for lax in (with_("dosing.dose.value", "10"), with_("dosing.dose.value", True)):
        assert by_model(lax) is not None and by_light(lax) is None


def test_the_light_check_knows_every_field_of_the_model():
    """A field added to the model must be added to mar.list_line too (and this list)."""
    assert list(ListedMedication.model_fields) == ["drug", "route", "dosing", "indication", "order_id", "note"]
    assert list(Scheduled.model_fields) == ["form", "dose", "frequency"]
    assert list(AsNeeded.model_fields) == ["form", "dose", "frequency", "max_daily", "prn_reason"]
    assert list(Infusion.model_fields) == ["form", "rate"]
    assert list(PCA.model_fields) == ["form", "demand_dose", "lockout_minutes", "basal_rate", "limit", "limit_hours"]
    assert list(Dose.model_fields) == list(Rate.model_fields) == ["value", "unit"]
    assert FORMS == ("scheduled", "as_needed", "infusion", "pca")
