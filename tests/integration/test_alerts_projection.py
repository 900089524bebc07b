"""Alerts are raised as events are projected (projections.alerts.projection).

A catch-up split at any points leaves exactly the alert rows of a full rebuild, and those
are the pure computation (engine.patient_alerts) of each patient's events.
"""
from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.main import cli
from mar.recording import Recorder
from mar.store import EventStore
from projections.alerts.engine import context, patient_alerts
from projections.course import build_course
from projections.alerts.projection import AlertsProjection, alert_rows, fingerprint
from projections.events_table import EventsProjection, patient_events, store_file
from projections.medication import MedicationProjection
from projections.runner import Runner
from tests.integration.projection_streams import ACTIONS, build_stream

intention = st.tuples(st.integers(0, len(ACTIONS) - 1), st.integers(0, 99), st.integers(0, 999),
                      st.floats(0, 1, allow_nan=False))


class StreamedAlerts(AlertsProjection):
    """The alerts projection rebuilt from the runner's patient streams (as from a store whose rows
    must be decrypted or upcast) rather than from the store file."""

    def bulk_begin(self, load) -> None:
        pass

    def bulk_all(self, db, load) -> bool:
        return False


def runner(store, path, alerts: AlertsProjection | None = None) -> Runner:
    return Runner(store, path, [EventsProjection(), MedicationProjection(), alerts or AlertsProjection()])


def rows(r: Runner) -> dict[str, list]:
    return {"alerts": r.db.execute("SELECT * FROM alerts ORDER BY patient_id, id").fetchall(),
            "alert_state": r.db.execute("SELECT * FROM alert_state ORDER BY patient_id").fetchall()}


def with_limits_and_acks(events: list[dict], seed: int) -> list[dict]:
    """The stream with limits the rules check (PCA limits, as-needed daily maxima) and
    acknowledgements of some of its alerts, charted at random places (some before their alert)."""
    for e in events:
        dosing = e.get("dosing") or {}
        if dosing.get("form") == "pca":
            dosing.update(limit={"value": 3, "unit": "mg"}, limit_hours=1)
        elif dosing.get("form") == "as_needed" and len(e["order_id"]) % 2:
            dosing["max_daily"] = {"value": 12, "unit": "mg"}
    by_patient: dict[str, list[dict]] = {}
    for e in events:
        by_patient.setdefault(e["patient_id"], []).append({**e, "event_id": e["idempotency_key"]})
    found = sorted((a.patient_id, a.id) for p in by_patient.values() for a in patient_alerts(p))
    rng = random.Random(seed)
    out = list(events)
    for n, (patient_id, alert_id) in enumerate(rng.sample(found, min(len(found), 4))):
        registered = next(i for i, e in enumerate(out) if e["patient_id"] == patient_id)
        place = rng.randrange(registered + 1, len(out) + 1)
        when = out[place - 1]["recorded_at"]
        out.insert(place, {"type": "alert_acknowledged", "patient_id": patient_id, "effective_at": when,
                           "recorded_at": when, "alert_id": alert_id, "reason": "reviewed",
                           "idempotency_key": f"{patient_id}/ack-{n}"})
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(intentions=st.lists(intention, min_size=40, max_size=250),
       cuts=st.lists(st.floats(0, 1), max_size=6),
       step=st.integers(1, 60),
       patients=st.integers(1, 3),
       seed=st.integers(0, 10 ** 6),
       streamed=st.booleans())
def test_alerts_caught_up_at_any_split_equal_a_rebuild_and_the_pure_computation(tmp_path_factory, intentions,
                                                                                cuts, step, patients, seed,
                                                                                streamed):
    tmp = tmp_path_factory.mktemp("alerts")
    events = with_limits_and_acks(build_stream(intentions, patients), seed)
    with EventStore(str(tmp / "mar.db")) as store:
        Recorder(store, "prop.test").record([(i, e) for i, e in enumerate(events, 1)])
        top = store.max_position()
        with runner(store, str(tmp / "inc.db")) as inc:
            for cut in sorted({int(c * top) for c in cuts} | set(range(step, top, step))):
                inc.catch_up(upto=cut)
            inc.catch_up()
            incremental = rows(inc)
            pure = sorted(row for pid in {e["patient_id"] for e in events}
                          for row in alert_rows(pid, patient_events(inc.db, pid)))
        with runner(store, str(tmp / "full.db"), StreamedAlerts() if streamed else None) as full:
            full.rebuild()
            rebuilt = rows(full)
    assert incremental == rebuilt
    assert incremental["alerts"] == pure
    want = fingerprint()
    assert incremental["alert_state"] == sorted((pid, want) for pid in {e["patient_id"] for e in events})


@settings(max_examples=60, deadline=None)
@given(intentions=st.lists(intention, min_size=20, max_size=200), patients=st.integers(1, 3))
def test_the_course_the_rules_read_is_the_whole_course(intentions, patients):
    """The engine folds the course without the doses and makes objects of the doses a rule reads
    only: the same orders, segments, lists and transitions, and the same doses, as
    build_course of every event."""
    by_patient: dict[str, list[dict]] = {}
    for e in with_limits_and_acks(build_stream(intentions, patients), 0):
        by_patient.setdefault(e["patient_id"], []).append({**e, "event_id": e["idempotency_key"],
                                                            "recorded_by": "t"})
    for events in by_patient.values():
        ctx = context(events)
        whole = build_course([e for _, _, e in ctx.events], times=[t for t, _, _ in ctx.events])
        assert ctx.course.segments == whole.segments
        assert ctx.course.transitions == whole.transitions and ctx.course.listed == whole.listed
        assert [(o.order_id, o.drug, o.start, o.end, o.ended_by, [c.event_id for c in o.changes])
                for o in ctx.course.orders.values()] == \
            [(o.order_id, o.drug, o.start, o.end, o.ended_by, [c.event_id for c in o.changes])
             for o in whole.orders.values()]
        assert ctx.doses.opioid == [a for a in whole.administrations if ctx.is_opioid(a.drug)]
        for form, kinds, found in (("as_needed", ("as_needed", "bolus"), ctx.doses.as_needed),
                                   ("pca", ("pca_demand", "bolus"), ctx.doses.pca)):
            expected: dict[str, list] = {}
            for a in whole.administrations:
                order = whole.orders.get(a.order_id)
                if order is not None and order.form == form and a.kind in kinds:
                    expected.setdefault(a.order_id, []).append(a)
            assert found == expected


def record(db: str, *lines: dict) -> None:
    for line in lines:
        result = CliRunner().invoke(cli, ["--db", db, "--user", "t", "record", "--json", json.dumps(line)])
        assert result.exit_code == 0, result.output


def stored_alerts(db: str) -> list[tuple]:
    conn = sqlite3.connect(db.replace(".db", ".projections.db"))
    try:
        return conn.execute("SELECT patient_id, rule, drug, status FROM alerts ORDER BY at_us").fetchall()
    finally:
        conn.close()


def test_any_catch_up_raises_the_alerts_of_the_events_it_projects(tmp_path):
    """No `mar alerts` anywhere: `mar project` and another read command's catch-up write them."""
    db = str(tmp_path / "mar.db")
    sched = {"form": "scheduled", "dose": {"value": 40, "unit": "mg"}, "frequency": "tid"}
    record(db, {"type": "patient_registered", "patient_id": "p-1", "effective_at": "2007-10-14T07:00:00-07:00",
                "timezone": "America/Los_Angeles"},
           {"type": "admitted", "patient_id": "p-1", "effective_at": "2007-10-14T08:00:00-07:00", "location": "7"},
           {"type": "medication_ordered", "patient_id": "p-1", "effective_at": "2007-10-14T09:00:00-07:00",
            "order_id": "met-1", "drug": "methadone", "route": "po", "dosing": sched, "prescriber": "dr.a"})
    result = CliRunner().invoke(cli, ["--db", db, "project"])
    assert result.exit_code == 0, result.output
    assert stored_alerts(db) == []
    record(db, {"type": "medication_ordered", "patient_id": "p-1", "effective_at": "2007-10-15T10:40:00-07:00",
                "order_id": "lz-1", "drug": "lorazepam", "route": "iv", "prescriber": "dr.a",
                "dosing": {"form": "as_needed", "dose": {"value": 1, "unit": "mg"}, "frequency": "q6h"}})
    result = CliRunner().invoke(cli, ["--db", db, "regimen", "p-1", "--json"])
    assert result.exit_code == 0, result.output
    assert stored_alerts(db) == [("p-1", "opioid_benzodiazepine", "lorazepam", "open")]


def test_a_rebuild_computing_the_alerts_in_another_process_gives_the_rows_of_a_catch_up(tmp_path, monkeypatch):
    from projections.alerts import bulk
    from tests.conftest import FIXTURE

    db = str(tmp_path / "ref.db")
    result = CliRunner().invoke(cli, ["--db", db, "--user", "t", "import", FIXTURE])
    assert result.exit_code == 0, result.output
    with EventStore(db) as store:
        with Runner(store, str(tmp_path / "inc.db"), batch_size=97) as inc:
            top = store.max_position()
            for cut in range(300, top, 300):
                inc.catch_up(upto=cut)  # the first one is a rebuild (in this process: a small store) ...
            inc.catch_up()  # ... the others catch up, 97 events at a time
            incremental = rows(inc)
        monkeypatch.setattr(bulk, "IN_PROCESS_UPTO", 0)
        with Runner(store, str(tmp_path / "full.db")) as full:
            full.rebuild()
            rebuilt = rows(full)
    assert len(incremental["alerts"]) == 15 and incremental == rebuilt


@pytest.mark.parametrize("start", ["at once", "when the other has done one", "when the other is done"])
def test_the_two_processes_share_the_patients_and_give_the_rows_of_one(tmp_path, start):
    """The other process goes from the first patient, this one from the last, until they meet."""
    from projections.alerts.bulk import Job, every_patient

    rng = random.Random(5)
    events = build_stream([(rng.randrange(len(ACTIONS)), rng.randrange(100), rng.randrange(1000), rng.random())
                           for _ in range(3000)], 40)
    with EventStore(str(tmp_path / "mar.db")) as store:
        Recorder(store, "t").record([(i, e) for i, e in enumerate(events, 1)])
        args = (store_file(store), store.recorder.events_table_name, store.max_position())
    alone = every_patient(*args)
    job = Job(*args, in_process_upto=0)
    if start == "when the other is done":
        job.process.wait()
    elif start == "when the other has done one":
        while Path(job.out).read_bytes().count(b"\n") < 2 and job.process.poll() is None:
            time.sleep(0.002)
    shared = job.rows()
    assert len(alone[1]) == 40 and len(alone[0]) > 40
    assert sorted(shared[0]) == sorted(alone[0]) and sorted(shared[1]) == sorted(alone[1])
    if start == "at once":
        assert job.shared[1] > 0  # the other process was still starting Python
    elif start == "when the other is done":
        assert job.shared[1] == 0
    assert job.process is None and job.out is None  # stopped, its file removed


def test_a_failure_in_the_other_process_is_an_error_naming_it(tmp_path):
    from projections.alerts.bulk import BulkAlertsError, Job

    with EventStore(str(tmp_path / "mar.db")) as store:
        Recorder(store, "t").record([(1, {"type": "patient_registered", "patient_id": "p-1", "timezone": "UTC",
                                          "effective_at": "2024-01-01T00:00:00+00:00"})])
        path = store_file(store)
    job = Job(path, "no_such_table", 10, in_process_upto=0)  # the other process reads a table that is not there
    job.args = (path, "stored_events", 10)  # this one reads the store
    job.process.wait()
    with pytest.raises(BulkAlertsError, match=r"computing the alerts in another process failed \(exit 1\): "
                                              r"(.|\n)*no such table: no_such_table"):
        job.rows()
    assert job.process is None and job.out is None


def test_a_catch_up_leaves_the_alert_rows_it_does_not_change_as_they_were(tmp_path):
    """Only alerts that came, went or changed are written: the others keep their rows (a delete
    and insert of every alert of each touched patient rewrote a page of the id index per alert)."""
    from tests.conftest import FIXTURE

    db = str(tmp_path / "ref.db")
    result = CliRunner().invoke(cli, ["--db", db, "--user", "t", "import", FIXTURE])
    assert result.exit_code == 0, result.output
    sql = "SELECT id, rowid, status FROM alerts"
    with EventStore(db) as store, runner(store, str(tmp_path / "inc.db")) as inc:
        top = store.max_position()
        inc.catch_up(upto=top - 300)
        before = {i: (rowid, status) for i, rowid, status in inc.db.execute(sql)}
        record_ack = inc.db.execute("SELECT id FROM alerts ORDER BY at_us LIMIT 1").fetchone()[0]
        inc.catch_up()
        Recorder(store, "t").record([(1, {
            "type": "alert_acknowledged", "patient_id": "ref-001", "effective_at": "2007-12-30T10:00:00-08:00",
            "alert_id": record_ack, "reason": "reviewed with the team", "idempotency_key": "ref-001/ack-test"})])
        inc.catch_up()
        after = {i: (rowid, status) for i, rowid, status in inc.db.execute(sql)}
    kept = [i for i in before if i != record_ack]
    assert len(before) >= 5 and len(after) > len(before)
    assert all(after[i] == before[i] for i in kept)  # same row, untouched by two catch-ups
    assert after[record_ack][1] == "acknowledged" and after[record_ack][0] != before[record_ack][0]


@settings(max_examples=40, deadline=None)
@given(intentions=st.lists(intention, min_size=30, max_size=250), patients=st.integers(1, 2))
def test_a_resolution_comes_after_its_alert_and_holds_from_its_instant_on(intentions, patients):
    """Read just before a resolution's instant the alert is not resolved; read at it, it is
    (the same alert, the same resolution): what resolves an alert is an event of that time."""
    events = build_stream(intentions, patients)
    by_patient: dict[str, list[dict]] = {}
    for e in events:
        by_patient.setdefault(e["patient_id"], []).append({**e, "event_id": e["idempotency_key"]})
    for record in by_patient.values():
        for a in patient_alerts(record):
            if a.resolution is None:
                assert a.status != "resolved"
                continue
            r = a.resolution
            assert a.status == "resolved" and r.at >= a.at and r.reason
            before = {x.id: x for x in patient_alerts(record, at=r.at - 1)}
            assert a.id not in before or before[a.id].status != "resolved"
            at = {x.id: x for x in patient_alerts(record, at=r.at)}
            assert at[a.id].status == "resolved" and at[a.id].resolution == r
