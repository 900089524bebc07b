"""The handoff Bundle is valid FHIR: the guarantee behind writing it without the fhir.resources
models (docs/decisions/0004-fhir-output-validation.md).

`handoff_bundle` checks each line as a mar list line and each value against its FHIR type
(mar.fhir_values); the shape comes from the writer's code. Here the fhir.resources models
validate that shape on generated packets, R5 and R4B: any packet the writer accepts must give
a Bundle the models accept, whatever text, codes, times and numbers it carries. The reference
case (POD 49, 65, 72 and every day) is in tests/integration/test_fhir_out_reference.py.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mar import fhir_values
from mar.catalog import Catalog, _shipped, default_catalog
from mar.errors import InvalidEvents, MarError
from mar.fhir_bundle import model_class
from mar.fhir_out import FLAGS, SEVERITIES, HandoffPacket, PacketAlert, PacketLine, handoff_bundle
from mar.units import MASS_TO_MG, RATE_TO_MG_PER_H

VERSIONS = ("R5", "R4B")
SHIPPED = default_catalog()


def site_catalog() -> Catalog:
    """The shipped catalog plus site drugs without an RxNorm code (written as urn:mar:drug)."""
    catalog = Catalog(edition="test")
    catalog.add(_shipped(), "shipped")
    catalog.add({"drugs": [{"name": "magic mouthwash", "routes": ["po"]},
                           {"name": "cream  base", "routes": ["td"]}]}, "site")
    return catalog


SITE = site_catalog()


def valid_fhir(bundle: dict, version: str) -> None:
    """Raises if the fhir.resources models of that version refuse the Bundle."""
    model_class(version, "Bundle").model_validate(bundle)


# --- strategies --------------------------------------------------------------------------------

def mostly(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """Usually `usual`, one time in about 15 `odd`: a packet has a dozen values, and most
    generated packets should pass the checks so that the models see many Bundles."""
    return st.sampled_from([False] * 14 + [True]).flatmap(lambda is_odd: odd if is_odd else usual)


clean_text = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF, categories=["L", "N", "P", "S"]),
                     min_size=1, max_size=12)
# any text, including empty, blank, control characters and leading or trailing spaces
any_text = mostly(clean_text | st.sampled_from(["a b", "line\nbreak", " ", "\t"]),
                  st.text(max_size=12) | st.sampled_from(["", "\x0b", "\x1c", " a", "a  b", "x" * 600]))
clean_offsets = st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))
offsets = mostly(clean_offsets | st.sampled_from([timezone.utc, timezone(timedelta(hours=14))]),
                 st.integers(-24 * 60 + 1, 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
                 | st.just(timezone(timedelta(seconds=30))))


def times(zones=offsets, low=datetime(1, 1, 1)) -> st.SearchStrategy:
    return st.datetimes(min_value=low, max_value=datetime(9999, 12, 30), timezones=zones)


def amount(units) -> st.SearchStrategy:
    values = st.floats(min_value=1e-9, max_value=1e12, allow_nan=False) | st.integers(1, 10**6) | st.just(1.7e308)
    return st.fixed_dictionaries({"value": values, "unit": st.sampled_from(sorted(units))})


clean_lockouts = st.floats(min_value=0.5, max_value=240) | st.integers(1, 240)
any_lockouts = mostly(clean_lockouts, st.sampled_from([0, -5, 241, 1e9, float("inf")]))
clean_hours = st.sampled_from([1, 4])
any_hours = mostly(clean_hours, st.sampled_from([2, 0, 24]))


def medications(catalog: Catalog, text, frequencies, lockouts=clean_lockouts, hours=clean_hours) -> st.SearchStrategy:
    optional_text = st.none() | text
    routes = st.sampled_from(sorted(catalog.routes))
    forms = st.one_of(
        st.fixed_dictionaries({"form": st.just("scheduled"), "dose": amount(MASS_TO_MG), "frequency": frequencies}),
        st.fixed_dictionaries({"form": st.just("as_needed"), "dose": amount(MASS_TO_MG), "frequency": frequencies},
                              optional={"max_daily": amount(MASS_TO_MG), "prn_reason": optional_text}),
        st.fixed_dictionaries({"form": st.just("infusion"), "rate": amount(RATE_TO_MG_PER_H)}),
        st.tuples(st.fixed_dictionaries({"form": st.just("pca"), "demand_dose": amount(MASS_TO_MG),
                                         "lockout_minutes": lockouts},
                                        optional={"basal_rate": amount(RATE_TO_MG_PER_H)}),
                  st.just({}) | st.fixed_dictionaries({"limit": amount(MASS_TO_MG),
                                                       "limit_hours": hours}),
                  ).map(lambda parts: {**parts[0], **parts[1]}),
    )
    return st.fixed_dictionaries(
        {"drug": st.sampled_from(sorted(catalog.drugs)), "route": routes, "dosing": forms},
        optional={"indication": optional_text, "order_id": optional_text, "note": optional_text})


def packets(catalog: Catalog, text, frequencies, zones, low=datetime(1, 1, 1), odd_pca=False) -> st.SearchStrategy:
    when = st.none() | times(zones, low)
    pca = (any_lockouts, any_hours) if odd_pca else (clean_lockouts, clean_hours)
    line = st.builds(PacketLine, medications(catalog, text, frequencies, *pca), st.sampled_from(sorted(FLAGS)),
                     st.none() | text, when, when)
    drugs = st.lists(st.sampled_from(sorted(catalog.drugs)) | text, max_size=3).map(tuple)
    alert = st.builds(PacketAlert, text, st.sampled_from(SEVERITIES), text, text, drugs,
                      st.lists(text, max_size=2).map(tuple), when)
    ids = st.sampled_from(["ref-001", "ward_4:ref_001", "p.7", "x" * 64, "x" * 65]) | text
    return st.builds(HandoffPacket, ids, times(zones, low), st.lists(line, max_size=5),
                     st.lists(alert, max_size=3), text)


catalog_frequencies = st.sampled_from(sorted(SHIPPED.frequencies))
any_frequency = mostly(catalog_frequencies, any_text | st.sampled_from(["q0h", "q36h", "q\u00b2h", "q\u0663h",
                                                                      "every 2 days"]))


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packet=packets(SITE, any_text, any_frequency, offsets, odd_pca=True), version=st.sampled_from(VERSIONS))
def test_whatever_the_writer_accepts_is_valid_fhir(packet, version):
    try:
        bundle = handoff_bundle(packet, version, SITE)
    except MarError:
        return  # refused with a message naming the field: nothing was written
    valid_fhir(bundle, version)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packet=packets(SHIPPED, clean_text, catalog_frequencies, clean_offsets, datetime(1900, 1, 1)),
       version=st.sampled_from(VERSIONS))
def test_a_packet_of_visible_text_is_never_refused_and_is_valid(packet, version):
    bundle = handoff_bundle(packet, version)  # every value is a FHIR value: nothing to refuse
    valid_fhir(bundle, version)


# --- the value check refuses what the models refuse -----------------------------------------------

AT = datetime(2007, 12, 3, 10, 0, tzinfo=timezone(timedelta(hours=-7)))
METHADONE = {"drug": "methadone", "route": "po", "order_id": "hm_meth:1",
             "dosing": {"form": "scheduled", "dose": {"value": 10, "unit": "mg"}, "frequency": "q8h"}}


def a_bundle(version: str = "R5") -> dict:
    packet = HandoffPacket("ref-001", AT, [PacketLine(METHADONE, "changed", "dose reduced", AT, AT)],
                           [PacketAlert("omission:memantine", "high", "omission", "memantine is missing",
                                        ("memantine", "methadone"), ("ordered POD 5",))])
    return handoff_bundle(packet, version)


def put(bundle: dict, path: str, value) -> dict:
    """A copy of the Bundle with the value at a dotted path (numbers index lists)."""
    import copy

    out = copy.deepcopy(bundle)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = out
    for p in parents:
        node = node[p]
    node[last] = value
    return out


STATEMENT = "entry.1.resource"
ISSUE = "entry.2.resource"
REFUSED_BY_BOTH = [
    ("entry.0.resource.title", "\x0b"),
    (f"{STATEMENT}.note", [{"text": 5}]),
    (f"{STATEMENT}.medication.concept.coding.0.code", "6813 "),
    (f"{STATEMENT}.medication.concept.coding.0.code", "magic  mouthwash"),
    (f"{STATEMENT}.medication.concept.coding.0.code", ""),
    (f"{STATEMENT}.medication.concept.coding.0.code", ["6813"]),
    (f"{STATEMENT}.dosage.0.doseAndRate.0.doseQuantity.value", float("nan")),
    (f"{STATEMENT}.dosage.0.doseAndRate.0.doseQuantity.value", True),
    (f"{STATEMENT}.dosage.0.doseAndRate.0.doseQuantity.value", "ten"),
    (f"{STATEMENT}.dosage.0.timing.repeat.frequency", 0),
    (f"{STATEMENT}.dosage.0.timing.repeat.period", True),
    (f"{STATEMENT}.dosage.0.timing.repeat.periodUnit", "h "),
    (f"{STATEMENT}.derivedFrom.0.identifier.value", 5),
    (f"{STATEMENT}.derivedFrom.0.identifier.value", ""),
    (f"{STATEMENT}.derivedFrom.0.identifier.value", {"value": "x"}),
    (f"{STATEMENT}.effectivePeriod.start", "2007-12-03T10:00:00-07:00:30"),
    (f"{STATEMENT}.effectivePeriod.start", "2007-12-03T10:00:00+14:30"),
    (f"{STATEMENT}.effectivePeriod.start", "2007-12-03T10:00:00"),
    (f"{STATEMENT}.effectivePeriod.start", "2007-02-30T10:00:00Z"),
    (f"{STATEMENT}.dateAsserted", "03/12/2007"),
    (f"{STATEMENT}.id", "not an id"),
    (f"{STATEMENT}.dosage.0.route", "oral"),
    ("timestamp", "2007-12-03"),
    ("entry.0.resource.title", ""),
    ("entry.0.resource.title", {"text": "x"}),
    (f"{ISSUE}.code.text", {"text": "omission"}),
    (f"{ISSUE}.evidence.0.code.0.text", ["nested"]),
    (f"{ISSUE}.implicated.1.display", "\x0b\x0b"),
    (f"{ISSUE}.severity", " high"),
    (f"{ISSUE}.severity", "very  high"),
]
# stricter than the models, which accept these: empty or blank markdown (Annotation.text), null for an
# absent element, a leap second, a FHIR element that mar does not write (category)
REFUSED_BY_THE_CHECK = [
    (f"{STATEMENT}.note", [{"text": ""}]),
    (f"{STATEMENT}.note", [{"text": "\x0b"}]),
    (f"{ISSUE}.code.text", None),
    (f"{STATEMENT}.effectivePeriod.start", "2016-12-31T23:59:60Z"),
    (f"{STATEMENT}.category", {"text": "inpatient"}),
]


def broken_bundle(version: str, path: str, value) -> tuple[dict, str]:
    if version == "R4B":
        path = path.replace(".medication.concept", ".medicationCodeableConcept")
    return put(a_bundle(version), path, value), "Bundle." + re.sub(r"\.(\d+)", r"[\1]", path)


def refused_by_the_check(version: str, path: str, value) -> dict:
    """The bundle with one defect; the value check names exactly that one, by its path."""
    broken, where = broken_bundle(version, path, value)
    found = fhir_values.problems(broken)
    assert len(found) == 1 and found[0].field.startswith(where), found
    return broken


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path, value", REFUSED_BY_BOTH)
def test_each_defect_is_refused_by_the_value_check_and_by_the_models(path, value, version):
    broken = refused_by_the_check(version, path, value)
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        valid_fhir(broken, version)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path, value", REFUSED_BY_THE_CHECK)
def test_the_value_check_refuses_some_more(path, value, version):
    refused_by_the_check(version, path, value)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_sample_bundle_passes_both(version):
    bundle = a_bundle(version)
    assert fhir_values.problems(bundle) == []
    valid_fhir(bundle, version)


def test_the_writer_refuses_a_value_that_is_not_fhir_and_names_it():
    blank_note = dict(METHADONE, note="\x0b")
    with pytest.raises(InvalidEvents) as caught:
        handoff_bundle(HandoffPacket("ref-001", AT, [PacketLine(blank_note, "unchanged")]))
    assert ("Bundle.entry[1].resource.note[0].text='\\x0b': empty or blank text is not a FHIR string"
            in str(caught.value))
    with pytest.raises(InvalidEvents, match=r"identifiedDateTime='2007-12-03T10:00:00\+00:00:30'"):
        odd = datetime(2007, 12, 3, 10, tzinfo=timezone(timedelta(seconds=30)))
        handoff_bundle(HandoffPacket("ref-001", AT, [], [PacketAlert("a", "low", "t", "d", identified_at=odd)]))


def test_writing_does_not_load_pydantic_or_fhir_resources():
    """The point of the light checks: a fresh process writes a Bundle without either."""
    import subprocess
    import sys

    code = ("import sys, datetime as d; from mar.fhir_out import *; "
            "z = d.timezone(d.timedelta(hours=-7)); "
            "line = {'drug': 'methadone', 'route': 'po', 'dosing': {'form': 'scheduled', "
            "'dose': {'value': 10, 'unit': 'mg'}, 'frequency': 'q8h'}}; "
            "handoff_bundle(HandoffPacket('p', d.datetime(2007, 1, 1, tzinfo=z), [PacketLine(line, 'unchanged')])); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core', 'fhir')"
            " or m == 'mar.events'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
