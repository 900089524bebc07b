"""Several processes recording at once, on every backend of `store_url`.

Each worker process opens its own store and records batches while the others do; every
batch is either stored whole (and reported added) or absent (and reported as a conflict
with mar's message). Afterwards: no event lost, none twice, versions without gaps, one
index row per event, every stream's chain recomputes from the stored rows, and read models
that a reader kept catching up during the writes equal a rebuild.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import threading
import time
import traceback

import pytest

from mar.errors import ConcurrencyConflict
from mar.recording import Recorder
from mar.store import EventStore, chain_hash, stream_id
from projections.runner import Runner
from tests.integration.synthetic import chart_start, dose

WORKERS = 4
GIVE_UP = ("other writers kept changing the same patients; gave up after 6 attempts. "
           "Nothing of this write was stored: run it again.")

pytestmark = pytest.mark.slow


def _worker(store_url: str, worker: int, batches: list[list[dict]], start, results) -> None:
    """Record each batch in turn; report (outcome, keys, detail) per batch and the retries."""
    from mar import recording

    retried = 0
    real_write = recording.Recorder._write

    def counting_write(self, *args):
        nonlocal retried
        try:
            return real_write(self, *args)
        except recording.CONFLICTS:
            retried += 1
            raise

    recording.Recorder._write = counting_write
    outcomes = []
    try:
        with EventStore(store_url) as store:
            rec = Recorder(store, f"rn.worker{worker}")
            start.wait(60)  # every worker ready: their writes overlap
            for batch in batches:
                keys = [e["idempotency_key"] for e in batch]
                try:
                    summary = rec.record(list(enumerate(batch, 1)))
                    outcomes.append(("added", keys, summary.added))
                except ConcurrencyConflict as exc:
                    outcomes.append(("conflict", keys, str(exc)))
    except Exception:  # the parent asserts on this text
        outcomes.append(("error", [], traceback.format_exc()))
    results.put((worker, outcomes, retried))


def _run(store_url: str, plans: dict[int, list[list[dict]]]) -> tuple[list[tuple], int]:
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(len(plans)), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(store_url, w, plan, start, results)) for w, plan in plans.items()]
    for p in procs:
        p.start()
    reports = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    outcomes = [o for _, worker_outcomes, _ in reports for o in worker_outcomes]
    errors = [o[2] for o in outcomes if o[0] == "error"]
    assert not errors, errors[0]
    return outcomes, sum(r for _, _, r in reports)


def _stored_keys(store: EventStore, patient_id: str) -> list[str]:
    return [r.data["idempotency_key"] for r in store.stream(patient_id)]


def _index_rows(store_url: str, oid: str) -> list[tuple]:
    """(version, event_id, digest, chain) straight from the database."""
    sql = ("SELECT originator_version, event_id, digest, chain FROM mar_index "
           "WHERE originator_id = {p} ORDER BY originator_version")
    if store_url.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(store_url) as conn:
            return [tuple(r) for r in conn.execute(sql.format(p="%s"), (oid,)).fetchall()]
    with sqlite3.connect(store_url) as conn:
        return conn.execute(sql.format(p="?"), (oid,)).fetchall()


def assert_stream_intact(store: EventStore, store_url: str, patient_id: str) -> list[str]:
    """Versions 1..n, unique keys, one index row per event, and the chain recomputes."""
    sid = stream_id(patient_id)
    events = store.recorder.select_events(sid)
    index = _index_rows(store_url, sid.hex)
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    assert [row[0] for row in index] == list(range(1, len(events) + 1))
    prev = ""
    for e, (version, event_id, digest, chain) in zip(events, index):
        prev_expected = chain_hash(prev, sid.hex, version, e.topic, e.state, None, event_id, digest)
        assert chain == prev_expected, f"chain breaks at version {version} of {patient_id}"
        prev = chain
    keys = _stored_keys(store, patient_id)
    assert len(keys) == len(set(keys)), "an event was stored twice"
    assert [row[1] for row in index] == keys
    return keys


def read_models(path: str) -> dict[str, list]:
    """Every read-model table's rows, in a stable order (the positions table aside)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != '_projections' ORDER BY name")]
        return {t: sorted(map(repr, con.execute(f"SELECT * FROM [{t}]"))) for t in tables}
    finally:
        con.close()



@contextlib.contextmanager
def catching_up(store_url: str, path: str):
    """A reader catching the read models up, again and again, while the writers write."""
    stop = threading.Event()

    def loop():
        with EventStore(store_url) as store, Runner(store, path, batch_size=7) as runner:
            while not stop.is_set():
                runner.catch_up()
                time.sleep(0.01)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)


def assert_projections_consistent(store_url: str, path: str, tmp_path) -> None:
    """The read models a reader kept up during the writes equal a rebuild from scratch: no
    event that committed late was skipped, none applied twice."""
    with EventStore(store_url) as store:
        with Runner(store, path) as runner:
            runner.catch_up()
        rebuilt = str(tmp_path / "rebuilt.db")
        with Runner(store, rebuilt) as runner:
            runner.rebuild()
        stored = len(list(store.iter_all()))
    caught_up = read_models(path)
    assert len(caught_up["events"]) == stored
    assert caught_up == read_models(rebuilt)


def assert_outcomes_match_store(outcomes: list[tuple], stored: set[str]) -> None:
    """Reported added: every key stored. Reported conflict: none stored, mar's message."""
    for outcome, keys, detail in outcomes:
        if outcome == "added":
            assert set(keys) <= stored, f"reported added but missing: {sorted(set(keys) - stored)[:3]}"
        else:
            assert detail == GIVE_UP
            assert not set(keys) & stored, "a batch reported as not written was partly stored"


def test_four_processes_recording_for_the_same_patient(store, store_url):
    pid = "conc-same"
    Recorder(store, "rn.setup").record(list(enumerate(chart_start(pid), 1)))
    per_worker = 15
    plans = {w: [[dose(pid, 1000 * w + n, f"w{w}")] for n in range(per_worker)] for w in range(WORKERS)}

    outcomes, retried = _run(store_url, plans)

    keys = assert_stream_intact(store, store_url, pid)
    written = {k for o, ks, _ in outcomes if o == "added" for k in ks}
    assert_outcomes_match_store(outcomes, set(keys))
    # Nothing else was stored: the three set-up events and what was reported added.
    assert set(keys) == written | {e["idempotency_key"] for e in chart_start(pid)}
    for w in range(WORKERS):  # each worker's doses land in its own order
        mine = [k for k in keys if k.startswith(f"{pid}/w{w}/")]
        assert mine == sorted(mine, key=lambda k: int(k.rsplit("/", 1)[1]))
    gave_up = sum(1 for o in outcomes if o[0] == "conflict")
    assert len(written) + gave_up == WORKERS * per_worker
    print(f"{_backend(store_url)}: {len(written)} doses stored, {retried} conflicts retried, "
          f"{gave_up} reported")


def test_four_processes_recording_for_different_patients(store, store_url, tmp_path):
    per_worker = 15
    patients = [f"conc-own-{w}" for w in range(WORKERS)]
    plans = {w: [chart_start(patients[w])] + [[dose(patients[w], n)] for n in range(per_worker)]
             for w in range(WORKERS)}
    read_path = str(tmp_path / "read-models.db")
    with catching_up(store_url, read_path):
        outcomes, retried = _run(store_url, plans)

    # Different streams never conflict on a version: every write succeeds.
    assert {o[0] for o in outcomes} == {"added"}
    for w, pid in enumerate(patients):
        keys = assert_stream_intact(store, store_url, pid)
        assert keys == [k for batch in plans[w] for k in (e["idempotency_key"] for e in batch)]
    positions = [p for p, _ in store.iter_all()]
    assert len(positions) == len(set(positions)) == WORKERS * (3 + per_worker)
    assert positions == sorted(positions)
    assert_projections_consistent(store_url, read_path, tmp_path)


def test_concurrent_file_imports_sharing_patients_are_each_all_or_nothing(store, store_url, tmp_path):
    """Each batch touches two shared patients and the worker's own: one transaction each."""
    shared = ["conc-shared-a", "conc-shared-b"]
    own = [f"conc-file-{w}" for w in range(WORKERS)]
    Recorder(store, "rn.setup").record(
        list(enumerate([e for pid in shared + own for e in chart_start(pid)], 1)))
    files = 6
    plans = {
        w: [[dose(pid, 1000 * w + f, f"w{w}") for pid in (*shared, own[w])] for f in range(files)]
        for w in range(WORKERS)
    }

    read_path = str(tmp_path / "read-models.db")
    with catching_up(store_url, read_path):
        outcomes, retried = _run(store_url, plans)

    stored = set()
    for pid in shared + own:
        stored |= set(assert_stream_intact(store, store_url, pid))
    assert_outcomes_match_store(outcomes, stored)
    for outcome, keys, _ in outcomes:  # whole files: all three patients, or none of them
        assert len(set(keys) & stored) in (0, len(keys))
    assert_projections_consistent(store_url, read_path, tmp_path)
    print(f"{_backend(store_url)}: {sum(o[0] == 'added' for o in outcomes)} files stored, "
          f"{retried} conflicts retried")


def _backend(store_url: str) -> str:
    return "postgres" if store_url.startswith(("postgresql://", "postgres://")) else "sqlite"
