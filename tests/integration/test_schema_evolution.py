"""Schema evolution: the frozen samples of every event type, as first written, still load,
upcast, validate, project and re-import; and the upcast path, shown with a made-up v2."""
from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from mar import events as ev
from mar.export import export_events
from mar.history import patient_history
from mar.importing import import_file
from mar.recording import STORE_FIELDS, digest_of
from mar.store import EventStore, Record, stream_id
from projections.course import build_course

SAMPLES = Path(__file__).parent.parent / "data" / "stored-events"
PATIENT = "frozen-001"


def samples() -> list[dict]:
    return [orjson.loads(line) for f in sorted(SAMPLES.glob("*.jsonl")) for line in f.read_bytes().splitlines()]


def store_as_written(path: Path, stored: list[dict]) -> EventStore:
    """A store holding these dicts byte for byte as an earlier mar wrote them."""
    store = EventStore(str(path))
    records = [Record(stream_id(d["patient_id"]), n, d) for n, d in enumerate(stored, 1)]
    keys = [(d["event_id"], digest_of({k: v for k, v in d.items() if k not in STORE_FIELDS})) for d in stored]
    store.append(records, keys)
    return store


def test_every_event_type_has_a_frozen_sample():
    assert {d["type"] for d in samples()} == set(ev.BY_TYPE)
    forms = {d["dosing"]["form"] for d in samples() if d["type"] == "medication_ordered"}
    assert forms == {"scheduled", "as_needed", "infusion", "pca"}


@pytest.mark.parametrize("stored", samples(), ids=lambda d: d["type"])
def test_each_sample_upcasts_and_validates_against_todays_model(stored):
    data = ev.upcast(dict(stored))
    assert data["v"] == ev.VERSIONS[data["type"]]
    ev.EVENT_ADAPTER.validate_python({k: v for k, v in data.items() if k not in STORE_FIELDS})


def test_the_samples_load_from_a_store_and_project(tmp_path):
    with store_as_written(tmp_path / "old.db", samples()) as store:
        loaded = [r.data for r in store.stream(PATIENT)]
        history = patient_history(store, PATIENT)
        chart = store.load_chart(PATIENT)
    assert [d["event_id"] for d in loaded] == [d["event_id"] for d in samples()]
    assert chart.version == len(samples()) and chart.timezone == "America/Los_Angeles"
    assert [h["entered_in_error_by"]["reason"] for h in history if "entered_in_error_by" in h] == [
        "charted on the wrong patient"]
    course = build_course(loaded)
    assert sorted(course.orders) == ["hm-pca-1", "ket-1", "mem-1", "oxy-1"]
    assert [a.order_id for a in course.administrations] == ["hm-pca-1"]  # the other dose was entered in error
    assert course.died_at is not None


def test_the_samples_export_and_reimport_through_todays_checks(tmp_path):
    with store_as_written(tmp_path / "old.db", samples()) as store:
        lines = list(export_events(store))
    (tmp_path / "x.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    with EventStore(str(tmp_path / "new.db")) as store:
        assert import_file(store, "restorer", str(tmp_path / "x.jsonl")).added == len(lines)
        again = [r.data for r in store.stream(PATIENT)]
    strip = lambda d: {k: v for k, v in d.items() if k not in ("stored_at", "stored_by")}  # noqa: E731
    assert [strip(d) for d in again] == [strip(ev.upcast(dict(d))) for d in samples()]


# --- the upcast path, with a made-up version 2 -------------------------------------------------


def _v2_weights_in_kg(data: dict) -> dict:
    """The made-up v2 of weight_recorded keeps every weight in kg."""
    w = data["weight"]
    data["weight"] = {"value": round(w["value"] * ev.WEIGHT_TO_KG[w["unit"]], 3), "unit": "kg"}
    return data


@pytest.fixture
def weight_v2(monkeypatch):
    monkeypatch.setitem(ev.VERSIONS, "weight_recorded", 2)
    monkeypatch.setitem(ev.UPCASTERS, ("weight_recorded", 1), _v2_weights_in_kg)


def _lb_weight() -> dict:
    first = [d for d in samples() if d["type"] == "weight_recorded"][0]
    return {**first, "weight": {"value": 200, "unit": "lb"}, "event_id": "old/weight/lb"}


def test_v1_rows_are_upcast_on_read(tmp_path, weight_v2):
    stored = samples()
    stored.insert(2, _lb_weight())
    with store_as_written(tmp_path / "old.db", stored) as store:
        weights = [r.data for r in store.stream(PATIENT) if r.data["type"] == "weight_recorded"]
        raw = [orjson.loads(n.state) for n in store.recorder.select_notifications(1, 100)]
    assert [(w["v"], w["weight"]) for w in weights] == [(2, {"value": 91.0, "unit": "kg"}),
                                                       (2, {"value": 90.718, "unit": "kg"})]
    # the stored bytes are not touched: upcasting happens on read only
    assert [r["v"] for r in raw if r["type"] == "weight_recorded"] == [1, 1]


def test_v1_export_lines_are_upcast_on_import(tmp_path, weight_v2):
    lines = [d for d in samples() if d["type"] == "patient_registered"] + [_lb_weight()]
    (tmp_path / "x.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    with EventStore(str(tmp_path / "new.db")) as store:
        import_file(store, "restorer", str(tmp_path / "x.jsonl"))
        weight = store.stream(PATIENT)[1].data
        raw = orjson.loads(store.recorder.select_notifications(2, 1)[0].state)
    assert (weight["v"], weight["weight"]) == (2, {"value": 90.718, "unit": "kg"})
    assert (raw["v"], raw["weight"]) == (2, {"value": 90.718, "unit": "kg"})  # written as today's version


def test_without_its_upcaster_a_newer_version_is_never_guessed(tmp_path, monkeypatch):
    monkeypatch.setitem(ev.VERSIONS, "weight_recorded", 2)
    with pytest.raises(KeyError):
        ev.upcast(json.loads(json.dumps(_lb_weight())))


def test_the_samples_project_through_the_read_commands(tmp_path, runner):
    from cli.main import cli

    with store_as_written(tmp_path / "old.db", samples()):
        pass
    result = runner.invoke(cli, ["--db", str(tmp_path / "old.db"), "totals", PATIENT, "--json"])
    assert result.exit_code == 0, result.output
    given = {(x["drug"], x["route"]) for d in json.loads(result.stdout)["days"] for x in d["drugs"]}
    assert {("hydromorphone", "iv"), ("ketamine", "iv")} <= given
    result = runner.invoke(cli, ["--db", str(tmp_path / "old.db"), "regimen", PATIENT, "--at",
                                 "2007-10-14T19:00", "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(m["drug"] for m in json.loads(result.stdout)["medications"]) == [
        "hydromorphone", "ketamine", "memantine", "oxycodone"]
