"""The projection runner: where the read models live, positions, crashes, read-your-writes."""
from __future__ import annotations

import threading

import pytest
import sqlite_utils

from mar.recording import Recorder
from mar.store import EventStore
from projections.events_table import EventsProjection
from projections.medication import MedicationProjection
from projections.queries import totals_for
from projections.runner import Projection, ProjectionError, Runner, projections_path
from tests.integration.projection_streams import build_stream
from tests.integration.test_projections_property import dump

P = "pt-0"


def events(n: int = 120):
    intentions = [(i * 7 % 23, i * 13 % 100, i * 37 % 1000, (i * 0.137) % 1) for i in range(n)]
    return build_stream(intentions, 2)


@pytest.fixture
def filled(store):
    Recorder(store, "t").record([(i, e) for i, e in enumerate(events(), 1)])
    return store


def test_read_models_live_beside_the_store_or_where_told(tmp_path, monkeypatch):
    assert projections_path(str(tmp_path / "ward.db")) == str(tmp_path / "ward.projections.db")
    assert projections_path(f"sqlite:///{tmp_path}/ward.db") == str(tmp_path / "ward.projections.db")
    monkeypatch.setenv("MAR_PROJECTIONS", str(tmp_path / "elsewhere.db"))
    assert projections_path(str(tmp_path / "ward.db")) == str(tmp_path / "elsewhere.db")
    monkeypatch.delenv("MAR_PROJECTIONS")
    with pytest.raises(ProjectionError, match="set MAR_PROJECTIONS"):
        projections_path("postgresql://db.example/mar")


def test_the_database_opens_with_sqlite_utils_and_has_the_read_models(filled, store_url):
    with Runner(filled) as runner:
        count = runner.catch_up()
        path = runner.path
    assert count == filled.max_position()
    db = sqlite_utils.Database(path)
    names = set(db.table_names())
    assert {"_projections", "events", "patients", "orders", "order_changes", "rate_segments", "administrations",
            "listed_medications", "transitions", "weights", "daily_totals"} <= names
    assert "daily_mme" in db.view_names()
    assert db["events"].count == count
    assert {r["name"]: r["position"] for r in db["_projections"].rows} == {"events": count, "medication": count,
                                                                         "alerts": count}
    assert db["daily_totals"].count > 0 and db["administrations"].count > 0


def test_catch_up_does_nothing_when_up_to_date(filled):
    with Runner(filled) as runner:
        assert runner.catch_up() > 0
        assert runner.catch_up() == 0


class Boom(Exception):
    pass


class FailingOnce(Projection):
    """Once armed, raises on its second batch, after the projections before it wrote their rows."""

    name, version, tables = "failing", 1, ("failing_rows",)

    def __init__(self):
        self.armed = False
        self.batches = 0

    def create(self, db):
        db["failing_rows"].create({"position": int}, pk="position")

    def apply(self, db, batch):
        db.conn.executemany("INSERT INTO failing_rows VALUES (?)", [(p,) for p, _ in batch.events])
        if self.armed:
            self.batches += 1
            if self.batches == 2:
                raise Boom("crash in the middle of a batch")


def test_a_crash_in_a_batch_applies_nothing_of_it_and_the_next_run_resumes(filled, tmp_path):
    top = filled.max_position()
    failing = FailingOnce()
    path = str(tmp_path / "crash.db")
    with Runner(filled, path, [EventsProjection(), MedicationProjection(), failing], batch_size=25) as runner:
        assert runner.catch_up(upto=30) == 30  # the first catch-up is a bulk load
        failing.armed = True
        with pytest.raises(Boom):
            runner.catch_up()
        # the batch 31-55 is committed, 56-80 rolled back whole: rows and positions agree
        assert runner.positions() == {"events": 55, "medication": 55, "failing": 55}
        assert runner.db["events"].count == 55 and runner.db["failing_rows"].count == 55
        assert runner.catch_up() == top - 55
        resumed = dump(runner)
    with Runner(filled, str(tmp_path / "clean.db"), [EventsProjection(), MedicationProjection(), FailingOnce()],
                batch_size=10_000) as clean:
        clean.catch_up()
        assert dump(clean) == resumed


def test_a_crash_during_a_rebuild_leaves_the_old_read_models(filled, tmp_path):
    path = str(tmp_path / "old.db")
    with Runner(filled, path) as runner:
        runner.catch_up()
        before = dump(runner)
    failing = FailingOnce()
    failing.armed = True
    with Runner(filled, path, [EventsProjection(), MedicationProjection(), failing]) as runner:
        with pytest.raises(Boom):
            runner.rebuild()
        after = dump(runner)
    assert {k: v for k, v in after.items() if k not in ("failing_rows", "_projections")} == {
        k: v for k, v in before.items() if k != "_projections"}


def test_read_your_writes(filled):
    before = totals_for(filled, P)
    last = before["days"][-1]["date"]
    oxy = {"type": "medication_ordered", "patient_id": P, "effective_at": f"{last}T12:00:00+00:00",
           "order_id": "extra", "drug": "oxycodone", "route": "po", "prescriber": "dr.x",
           "dosing": {"form": "as_needed", "dose": {"value": 5, "unit": "mg"}, "frequency": "q4h"}}
    dose = {"type": "dose_given", "patient_id": P, "effective_at": f"{last}T12:30:00+00:00", "order_id": "extra",
            "dose": {"value": 5, "unit": "mg"}, "route": "po", "kind": "as_needed"}
    Recorder(filled, "t").record([(1, oxy), (2, dose)])
    after = totals_for(filled, P)
    got = [x["amount"] for d in after["days"] for x in d["drugs"] if x["drug"] == "oxycodone" and x["route"] == "po"]
    was = [x["amount"] for d in before["days"] for x in d["drugs"] if x["drug"] == "oxycodone" and x["route"] == "po"]
    assert sum(got) == pytest.approx(sum(was) + 5)


def test_a_new_projection_version_is_rebuilt_from_the_store(filled, tmp_path):
    path = str(tmp_path / "v.db")
    with Runner(filled, path) as runner:
        runner.catch_up()
        before = dump(runner)
        runner.db.execute("UPDATE _projections SET version = 0 WHERE name = 'medication'")
        runner.db.execute("DELETE FROM daily_totals")
    with Runner(filled, path) as runner:
        assert runner.positions()["medication"] == 0 and runner.positions()["events"] > 0
        runner.catch_up()
        assert dump(runner) == before


def test_read_models_ahead_of_the_store_are_started_again(filled, tmp_path):
    path = str(tmp_path / "ahead.db")
    with Runner(filled, path) as runner:
        runner.catch_up()
    with EventStore(str(tmp_path / "other.db")) as other:
        Recorder(other, "t").record([(i, e) for i, e in enumerate(events(40), 1)])
        with Runner(other, path) as runner:
            runner.catch_up()
            assert runner.db["events"].count == other.max_position()


def test_two_readers_catching_up_at_once_apply_each_event_once(filled, tmp_path):
    path = str(tmp_path / "both.db")
    errors = []

    def read():
        try:
            with Runner(filled, path, batch_size=20) as runner:
                runner.catch_up()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Runner(filled, path) as runner:
        assert runner.db["events"].count == filled.max_position()
        with Runner(filled, str(tmp_path / "single.db")) as single:
            single.catch_up()
            assert dump(single) == dump(runner)


def test_an_up_to_date_read_does_not_open_the_event_store_but_a_new_write_does(filled, store_url, monkeypatch):
    import mar.store
    from projections.queries import StoreRef, regimen_at

    if store_url.startswith("postgresql"):
        pytest.skip("the up-to-date shortcut reads a SQLite store's file; a PostgreSQL store is always opened")
    first = regimen_at(StoreRef(store_url), P, "2020-03-02T12:00:00Z")  # catches up

    class Opened(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Opened

    monkeypatch.setattr(mar.store, "EventStore", refuse)
    assert regimen_at(StoreRef(store_url), P, "2020-03-02T12:00:00Z") == first
    monkeypatch.undo()
    weight = {"type": "weight_recorded", "patient_id": P, "effective_at": "2020-03-02T12:00:00Z",
              "weight": {"value": 70, "unit": "kg"}}
    Recorder(filled, "t").record([(1, weight)])
    monkeypatch.setattr(mar.store, "EventStore", refuse)
    with pytest.raises(Opened):
        regimen_at(StoreRef(store_url), P, "2020-03-02T12:00:00Z")


def test_an_order_written_anew_after_a_correction_relabels_its_doses_in_both_paths(store, tmp_path):
    def e(event_type, at, **kw):
        return {"type": event_type, "patient_id": "r1", "effective_at": at, "idempotency_key": f"r1/{len(stream)}",
                **kw}

    stream: list[dict] = []
    for event_type, at, kw in [
        ("patient_registered", "2020-01-01T08:00:00Z", {"timezone": "Europe/London"}),
        ("admitted", "2020-01-01T08:00:00Z", {"location": "ward"}),
        ("medication_ordered", "2020-01-01T09:00:00Z", {"order_id": "x", "drug": "hydromorphone", "route": "iv",
                                                        "prescriber": "d", "dosing": {"form": "as_needed",
                                                        "dose": {"value": 2, "unit": "mg"}, "frequency": "q4h"}}),
        ("dose_given", "2020-01-01T10:00:00Z", {"order_id": "x", "dose": {"value": 2, "unit": "mg"}, "route": "iv",
                                                "kind": "as_needed"}),
        ("entered_in_error", "2020-01-01T11:00:00Z", {"target_event_id": "r1/2", "reason": "wrong drug"}),
        ("medication_ordered", "2020-01-01T11:00:00Z", {"order_id": "x", "drug": "morphine", "route": "iv",
                                                        "prescriber": "d", "dosing": {"form": "as_needed",
                                                        "dose": {"value": 2, "unit": "mg"}, "frequency": "q4h"}}),
    ]:
        stream.append(e(event_type, at, **kw))
    Recorder(store, "t").record([(i, x) for i, x in enumerate(stream, 1)])
    with Runner(store, str(tmp_path / "inc.db")) as inc:
        for k in range(1, store.max_position() + 1):
            inc.catch_up(upto=k)
        incremental = dump(inc)
    with Runner(store, str(tmp_path / "full.db")) as full:
        full.rebuild()
        rebuilt = dump(full)
    assert incremental == rebuilt
    assert [(r[2], r[3]) for r in rebuilt["daily_totals"]] == [("morphine", "iv")]
