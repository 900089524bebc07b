"""The write side on a real store file: all-or-nothing import, idempotency, append-only
tables, snapshots, history round trip, concurrent writers, file permissions.

Tests take `store_url` / `store` from tests/conftest.py, so they run on every backend
there; the few that need SQLite itself say so.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mar.chart import Chart
from mar.errors import ConcurrencyConflict, InvalidEvents
from mar.history import patient_history
from mar.importing import import_file
from mar.recording import Recorder
from mar.store import SNAPSHOT_INTERVAL, EventStore, stream_id
from tests.conftest import FIXTURE

PID = "ref-001"
USER = "rn.test"
T0 = datetime.fromisoformat("2007-10-14T08:00:00-07:00")
NOW = datetime.fromisoformat("2007-12-31T12:00:00-08:00")

STORE_ONLY = ("version", "late", "entered_in_error_by", "event_id", "stored_at", "stored_by", "v")


def t(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def base(pid: str = PID) -> list[dict]:
    """Registration, weight, admission and three orders: what doses need."""
    return [
        {"type": "patient_registered", "patient_id": pid, "timezone": "America/Los_Angeles",
         "effective_at": t(0), "idempotency_key": f"{pid}/reg"},
        {"type": "weight_recorded", "patient_id": pid, "weight": {"value": 91, "unit": "kg"},
         "effective_at": t(30)},
        {"type": "admitted", "patient_id": pid, "location": "oncology", "effective_at": t(60)},
        {"type": "medication_ordered", "patient_id": pid, "order_id": "hm-pca", "drug": "hydromorphone",
         "route": "iv", "prescriber": "dr.pain", "effective_at": t(120),
         "dosing": {"form": "pca", "demand_dose": {"value": 1.2, "unit": "mg"}, "lockout_minutes": 6,
                    "basal_rate": {"value": 1.2, "unit": "mg/h"}}},
        {"type": "medication_ordered", "patient_id": pid, "order_id": "ket-1", "drug": "ketamine",
         "route": "iv", "prescriber": "dr.pain", "effective_at": t(180),
         "dosing": {"form": "infusion", "rate": {"value": 55, "unit": "mcg/kg/h"}}},
        {"type": "medication_ordered", "patient_id": pid, "order_id": "mem-1", "drug": "memantine",
         "route": "po", "prescriber": "dr.pain", "effective_at": t(240),
         "dosing": {"form": "scheduled", "dose": {"value": 5, "unit": "mg"}, "frequency": "bid"}},
    ]


def demand(n: int, pid: str = PID, key: str | None = None) -> dict:
    """The n-th PCA demand dose, ten minutes apart, with its own idempotency key."""
    return {"type": "dose_given", "patient_id": pid, "order_id": "hm-pca", "route": "iv",
            "kind": "pca_demand", "dose": {"value": 1.2, "unit": "mg"}, "effective_at": t(300 + 10 * n),
            "idempotency_key": key or f"{pid}/pca/{n}"}


def write_jsonl(path: Path, events: list) -> str:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return str(path)


def recorder(store: EventStore, user: str = USER) -> Recorder:
    return Recorder(store, user, clock=lambda: NOW)


def count_rows(store: EventStore) -> int:
    return len(list(store.iter_all()))


# --- all-or-nothing import ------------------------------------------------------------


def test_one_bad_line_among_many_writes_nothing_and_every_bad_line_is_reported(store, tmp_path, monkeypatch):
    monkeypatch.setattr("mar.importing.Recorder", lambda s, u: recorder(s, u))
    lines: list = base() + [demand(n) for n in range(300)]
    lines[40] = {**lines[40], "dose": {"value": 1.2, "unit": "mg/h"}}  # line 41: a rate unit for a dose
    lines.insert(100, "")  # a blank line still counts: line numbers match the editor's
    lines[200] = {**lines[200], "order_id": "hm-pcaa"}  # line 201: unknown order
    lines[250] = '{"type": "dose_given", "patient_id": "ref-001"'  # line 251: not JSON
    path = write_jsonl(tmp_path / "doses.jsonl", lines)

    with pytest.raises(InvalidEvents) as info:
        import_file(store, USER, path)

    assert [(p.line, p.field) for p in info.value.problems] == [
        (41, "dose.unit"), (201, "order_id"), (251, "(line)"),
    ]
    text = str(info.value)
    assert text.startswith(f"{path}: 3 problems, nothing written:\n  line 41: dose.unit='mg/h': ")
    assert "\n  line 201: order_id='hm-pcaa': no order with this id for patient ref-001" in text
    assert count_rows(store) == 0
    assert store.stream(PID) == []


def test_bad_lines_of_several_patients_are_all_reported(store, tmp_path):
    lines = base("p-1") + base("p-2") + [demand(0, "p-1"), {**demand(0, "p-2"), "kind": "scheduled"},
                                         {**demand(1, "p-1"), "effective_at": "2007-10-15T09:00:00"}]
    path = write_jsonl(tmp_path / "two.jsonl", lines)
    with pytest.raises(InvalidEvents) as info:
        recorder(store).record(list(enumerate(open(path), 1)), source=path)
    assert [(p.line, p.field) for p in info.value.problems] == [(14, "kind"), (15, "effective_at")]
    assert count_rows(store) == 0


def test_import_then_reimport_adds_nothing(store, tmp_path):
    path = write_jsonl(tmp_path / "case.jsonl", base() + [demand(n) for n in range(20)])
    first = recorder(store).record(list(enumerate(open(path), 1)), source=path)
    assert (first.added, first.already_stored, first.patients) == (26, 0, {PID})
    rows = count_rows(store)
    again = recorder(store).record(list(enumerate(open(path), 1)), source=path)
    assert (again.added, again.already_stored, again.patients) == (0, 26, set())
    assert count_rows(store) == rows == 26


def test_reimport_with_new_lines_adds_only_the_new(store, tmp_path):
    recorder(store).record(list(enumerate(base() + [demand(n) for n in range(5)], 1)))
    summary = recorder(store).record(list(enumerate(base() + [demand(n) for n in range(8)], 1)))
    assert (summary.added, summary.already_stored) == (3, 11)
    assert len(store.stream(PID)) == 14


def test_same_key_with_different_content_is_an_error_and_writes_nothing(store):
    recorder(store).record(list(enumerate(base() + [demand(0)], 1)))
    rows = count_rows(store)
    changed = {**demand(0), "dose": {"value": 2.4, "unit": "mg"}}
    with pytest.raises(InvalidEvents) as info:
        recorder(store).record([(1, demand(1)), (2, changed), (3, demand(2))], source="late.jsonl")
    assert str(info.value) == (
        "late.jsonl: 1 problem, nothing written:\n"
        "  line 2: idempotency_key='ref-001/pca/0': already used for an event with different content"
    )
    assert count_rows(store) == rows


def test_same_key_twice_in_one_file_with_different_content(store):
    recorder(store).record(list(enumerate(base(), 1)))
    with pytest.raises(InvalidEvents) as info:
        recorder(store).record([(1, demand(0)), (2, {**demand(0), "note": "second try"})])
    assert [(p.line, p.field, p.value) for p in info.value.problems] == [(2, "idempotency_key", "ref-001/pca/0")]
    assert len(store.stream(PID)) == len(base())


def test_same_event_twice_in_one_file_is_stored_once(store):
    summary = recorder(store).record(list(enumerate(base() + [demand(0), demand(0)], 1)))
    assert (summary.added, summary.already_stored) == (7, 1)


def test_events_without_key_are_identified_by_content(store):
    no_key = {k: v for k, v in demand(0).items() if k != "idempotency_key"}
    recorder(store).record(list(enumerate(base() + [no_key], 1)))
    again = recorder(store).record([(1, dict(reversed(list(no_key.items()))))])
    assert (again.added, again.already_stored) == (0, 1)
    other = recorder(store).record([(1, {**no_key, "effective_at": t(900)})])
    assert other.added == 1


# --- append-only inside the database ----------------------------------------------------


def _raw(store_url: str):
    """A plain database connection, and the events table's name, beside the library's."""
    if store_url.startswith(("postgresql://", "postgres://")):
        import psycopg

        return psycopg.connect(store_url, autocommit=True), "marstore_events", psycopg.Error
    return sqlite3.connect(store_url, isolation_level=None), "stored_events", sqlite3.DatabaseError


@pytest.mark.parametrize("statement", [
    "UPDATE {table} SET topic = 'tampered'",
    "DELETE FROM {table}",
    "DELETE FROM {table} WHERE originator_version = 2",
])
@pytest.mark.parametrize("which", ["events", "mar_index"])
def test_update_and_delete_fail_inside_the_database(store, store_url, statement, which):
    recorder(store).record(list(enumerate(base(), 1)))
    conn, events_table, db_error = _raw(store_url)
    table = events_table if which == "events" else "mar_index"
    if which == "mar_index":
        statement = statement.replace("topic", "digest")
    try:
        before = conn.execute(f"SELECT * FROM {table} ORDER BY originator_version").fetchall()
        with pytest.raises(db_error, match=f"mar: {table} is append-only; record a correction instead"):
            conn.execute(statement.format(table=table))
        after = conn.execute(f"SELECT * FROM {table} ORDER BY originator_version").fetchall()
    finally:
        conn.close()
    assert len(before) == len(base()) and after == before


def test_store_still_reads_and_writes_after_a_refused_tamper(store, store_url):
    recorder(store).record(list(enumerate(base(), 1)))
    conn, table, db_error = _raw(store_url)
    with pytest.raises(db_error):
        conn.execute(f"DELETE FROM {table}")
    conn.close()
    assert recorder(store).record([(1, demand(0))]).added == 1
    assert len(store.stream(PID)) == len(base()) + 1


# --- snapshots ---------------------------------------------------------------------------


def replayed(store: EventStore, pid: str) -> Chart:
    chart = Chart(pid)
    for r in store.stream(pid):
        chart.apply(r.data, r.originator_version)
    return chart


def test_chart_from_snapshot_and_tail_equals_full_replay(store):
    rec = recorder(store)
    events = base() + [demand(n) for n in range(SNAPSHOT_INTERVAL + 100)]
    # facts the chart keeps, spread over the stream so that both snapshot and tail hold some
    events[300:300] = [
        {"type": "order_held", "patient_id": PID, "order_id": "mem-1", "reason": "sedated", "effective_at": t(3000)},
        {"type": "order_resumed", "patient_id": PID, "order_id": "mem-1", "effective_at": t(3100)},
        {"type": "weight_recorded", "patient_id": PID, "weight": {"value": 89, "unit": "kg"},
         "effective_at": t(3200), "idempotency_key": "w2"},
    ]
    rec.record(list(enumerate(events, 1)))
    snaps = list(store.app.snapshots.get(stream_id(PID), desc=True, limit=1))
    assert [s.originator_version for s in snaps] == [len(events)]  # written when the batch crossed 500

    tail = [demand(n) for n in range(1000, 1040)] + [
        {"type": "entered_in_error", "patient_id": PID, "target_event_id": "w2", "reason": "wrong scale",
         "effective_at": t(9000)},
        {"type": "order_discontinued", "patient_id": PID, "order_id": "ket-1", "reason": "pain controlled",
         "effective_at": t(9100)},
        {"type": "transferred", "patient_id": PID, "to_location": "ICU", "effective_at": t(9200)},
    ]
    for n, e in enumerate(tail, 1):  # one write each: the tail is stored after the snapshot
        rec.record([(n, e)])

    loaded, full = store.load_chart(PID), replayed(store, PID)
    assert loaded.version == full.version == len(events) + len(tail)
    assert loaded.to_dict() == full.to_dict()
    assert "w2" in loaded.voided and loaded.orders["ket-1"].lifecycle[-1][1] == "discontinued"


def test_snapshot_is_used_not_just_written(store, monkeypatch):
    rec = recorder(store)
    rec.record(list(enumerate(base() + [demand(n) for n in range(SNAPSHOT_INTERVAL)], 1)))
    rec.record([(1, demand(9999))])
    applied = []
    real_apply = Chart.apply
    monkeypatch.setattr(Chart, "apply", lambda self, e, v=None: (applied.append(v), real_apply(self, e, v)))
    kept = store.load_chart(PID)
    assert applied == []  # this store object wrote the chart last: it kept it, nothing to fold
    store._charts.clear()  # as in a new process
    chart = store.load_chart(PID)
    assert applied == [chart.version]  # only the one event after the snapshot was folded
    assert chart.to_dict() == kept.to_dict()


def test_snapshot_round_trips(store):
    recorder(store).record(list(enumerate(base() + [demand(0)], 1)))
    chart = store.load_chart(PID)
    assert Chart.from_dict(json.loads(json.dumps(chart.to_dict()))).to_dict() == chart.to_dict()


# --- history -----------------------------------------------------------------------------


def exported(history: list[dict]) -> list[dict]:
    """What an export of the history gives: the events as sent, keyed by their stored id."""
    return [{**{k: v for k, v in e.items() if k not in STORE_ONLY}, "idempotency_key": e["event_id"]}
            for e in history]


def test_history_round_trips_into_a_new_store(store, tmp_path):
    events = base() + [demand(n) for n in range(5)] + [
        {"type": "entered_in_error", "patient_id": PID, "target_event_id": "ref-001/pca/3",
         "reason": "charted twice", "effective_at": t(400), "recorded_by": "rn.other"},
        {"type": "dose_given", "patient_id": PID, "order_id": "mem-1", "route": "po", "kind": "scheduled",
         "dose": {"value": 5, "unit": "mg"}, "effective_at": t(600), "recorded_at": t(700), "note": "late"},
    ]
    recorder(store).record(list(enumerate(events, 1)))
    first = patient_history(store, PID)
    assert [e["type"] for e in first] == [e["type"] for e in events]
    assert [e["version"] for e in first] == list(range(1, len(events) + 1))
    assert all(e["recorded_by"] == USER and e["stored_by"] == USER for e in first[:-2])
    assert first[-2]["recorded_by"] == "rn.other" and first[-2]["stored_by"] == USER
    assert first[-1]["recorded_at"] == t(700) and first[-1]["late"] is True
    assert first[6 + 3]["entered_in_error_by"]["reason"] == "charted twice"
    for given, stored in zip(events, first):
        assert {k: v for k, v in stored.items() if k in given} == json.loads(json.dumps(given)) | {
            k: stored[k] for k in ("effective_at", "recorded_at") if k in given}

    path = write_jsonl(tmp_path / "export.jsonl", exported(first))
    with EventStore(str(tmp_path / "copy.db")) as copy:
        summary = import_file(copy, "someone.else", path)
        assert summary.added == len(events)
        second = patient_history(copy, PID)
    # the copy's writer differs, and events first sent without a key now carry their id as one
    strip = lambda h: [{k: v for k, v in e.items()  # noqa: E731
                        if k not in ("stored_at", "stored_by", "idempotency_key")} for e in h]
    assert strip(second) == strip(first)
    assert [e["event_id"] for e in second] == [e["event_id"] for e in first]


def test_history_keeps_the_clinical_offset_as_written(store):
    e = {**demand(0), "effective_at": "2007-10-15T12:10:00-07:00", "recorded_at": "2007-10-15T19:11:00Z"}
    recorder(store).record(list(enumerate(base() + [e], 1)))
    last = patient_history(store, PID)[-1]
    assert last["effective_at"] == "2007-10-15T12:10:00-07:00"
    assert last["recorded_at"] == "2007-10-15T19:11:00Z"
    assert last["late"] is False


@pytest.mark.skipif(not os.path.exists(FIXTURE), reason="fixtures/seed_case.jsonl not written yet (issue 2, item 6)")
def test_reference_fixture_imports_clean_and_round_trips(store, tmp_path):
    first = import_file(store, USER, FIXTURE)
    assert first.added > 0 and first.patients == {PID}
    again = import_file(store, USER, FIXTURE)
    assert (again.added, again.already_stored) == (0, first.added)
    history = patient_history(store, PID)
    path = write_jsonl(tmp_path / "export.jsonl", exported(history))
    with EventStore(str(tmp_path / "copy.db")) as copy:
        assert import_file(copy, USER, path).added == first.added
        assert [e["event_id"] for e in patient_history(copy, PID)] == [e["event_id"] for e in history]


# --- concurrent writers ------------------------------------------------------------------------


def test_a_conflicting_write_is_retried_and_nothing_is_lost(store, store_url, monkeypatch):
    """Another writer appends between our chart read and our append: we reload and retry."""
    recorder(store).record(list(enumerate(base(), 1)))
    other = EventStore(store_url)
    real_load = store.load_chart
    calls = []

    def load_then_lose_the_race(patient_id):
        chart = real_load(patient_id)
        calls.append(chart.version)
        if len(calls) == 1:
            recorder(other, "rn.other").record([(1, demand(1))])
        return chart

    monkeypatch.setattr(store, "load_chart", load_then_lose_the_race)
    try:
        assert recorder(store).record([(1, demand(0))]).added == 1
    finally:
        other.close()
    assert calls == [6, 7]
    stream = store.stream(PID)
    assert [r.originator_version for r in stream] == list(range(1, 9))
    assert [r.data["idempotency_key"] for r in stream[-2:]] == ["ref-001/pca/1", "ref-001/pca/0"]


def test_a_write_that_keeps_conflicting_gives_up_clearly_and_writes_nothing(store, store_url, monkeypatch):
    recorder(store).record(list(enumerate(base(), 1)))
    other = EventStore(store_url)
    real_load = store.load_chart
    n = iter(range(100, 200))

    def always_lose(patient_id):
        chart = real_load(patient_id)
        recorder(other, "rn.other").record([(1, demand(next(n)))])
        return chart

    monkeypatch.setattr(store, "load_chart", always_lose)
    monkeypatch.setattr("mar.store.time.sleep", lambda s: None)
    try:
        with pytest.raises(ConcurrencyConflict) as info:
            recorder(store).record([(1, demand(0))])
    finally:
        other.close()
    assert str(info.value) == (
        "other writers kept changing the same patients; gave up after 6 attempts. "
        "Nothing of this write was stored: run it again."
    )
    keys = [r.data.get("idempotency_key") for r in store.stream(PID)]
    assert "ref-001/pca/0" not in keys and len(keys) == len(base()) + 6


def _write_doses(store_url: str, worker: int, count: int, start, conflicts, give_ups) -> None:
    """One process: record `count` doses one at a time, counting the conflicts it retried.

    When the bounded retry gives up (ConcurrencyConflict), nothing of that write may be
    stored; the worker then does what the message says, runs it again.
    """
    from mar import recording

    store = EventStore(store_url)
    real_write = recording.Recorder._write

    def counting_write(self, *args):
        try:
            return real_write(self, *args)
        except recording.CONFLICTS:
            with conflicts.get_lock():
                conflicts.value += 1
            raise

    recording.Recorder._write = counting_write
    rec = Recorder(store, f"rn.{worker}", clock=lambda: NOW)
    start.wait()  # both processes ready: their writes overlap
    for n in range(count):
        dose = demand(worker * 1000 + n)
        for _ in range(20):
            try:
                rec.record([(n + 1, dose)])
                break
            except ConcurrencyConflict:
                assert store.known_ids(PID, [dose["idempotency_key"]]) == {}
                with give_ups.get_lock():
                    give_ups.value += 1
        else:
            raise AssertionError(f"dose {n} of worker {worker} never stored")
    store.close()


@pytest.mark.slow
def test_two_processes_recording_doses_for_one_patient(store, store_url):
    recorder(store).record(list(enumerate(base(), 1)))
    ctx = multiprocessing.get_context("spawn")
    start, conflicts, give_ups = ctx.Barrier(2), ctx.Value("i", 0), ctx.Value("i", 0)
    count = 60
    procs = [ctx.Process(target=_write_doses, args=(store_url, w, count, start, conflicts, give_ups))
             for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]

    stream = store.stream(PID)
    keys = [r.data["idempotency_key"] for r in stream[len(base()):]]
    expected = {demand(w * 1000 + n)["idempotency_key"] for w in (1, 2) for n in range(count)}
    assert len(keys) == 2 * count and set(keys) == expected  # none lost, none twice
    assert [r.originator_version for r in stream] == list(range(1, len(base()) + 2 * count + 1))
    for w in (1, 2):  # each writer's doses in its own order
        mine = [k for k in keys if k.startswith(f"{PID}/pca/{w}")]
        assert mine == sorted(mine, key=lambda k: int(k.rsplit("/", 1)[1]))
    print(f"conflicts retried: {conflicts.value}; writes given up and run again: {give_ups.value}")


# --- files ------------------------------------------------------------------------------------


def _sqlite_only(store_url: str) -> Path:
    if store_url.startswith(("postgresql://", "postgres://")):
        pytest.skip("file permissions concern the SQLite file")
    return Path(store_url)


def test_store_file_is_created_private(store_url):
    path = _sqlite_only(store_url)
    old = os.umask(0o022)
    try:
        with EventStore(str(path)) as s:
            recorder(s).record(list(enumerate(base(), 1)))
            files = [f for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if f.exists()]
            assert path in files
            assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: "0o600" for f in files}
    finally:
        os.umask(old)


def test_store_in_a_new_directory(tmp_path):
    path = tmp_path / "new" / "dir" / "mar.db"
    with EventStore(str(path)) as s:
        recorder(s).record(list(enumerate(base(), 1)))
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_existing_file_permissions_are_left_alone(tmp_path):
    path = tmp_path / "shared.db"
    with EventStore(str(path)):
        pass
    path.chmod(0o640)
    with EventStore(str(path)):
        pass
    assert oct(path.stat().st_mode & 0o777) == "0o640"
