"""Crash safety: `mar import` and `mar project` killed with SIGKILL in the middle, on every
backend of `store_url`.

An import is one transaction: killed while it writes (its write lock held and rows going
into the database), it leaves nothing of the file, and running it again stores the file
exactly once. A projection batch is one transaction of the read-model database: killed
mid-way, the read models stay consistent with their recorded positions, and catching up
again gives the same tables as a rebuild from scratch.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mar.store import EventStore
from tests.integration.synthetic import chart_start, dose, hospital, write_jsonl
from tests.integration.test_concurrency import assert_stream_intact, read_models

ROOT = Path(__file__).resolve().parents[2]
PATIENTS, DOSES = 20, 600  # 12,000 doses: a few seconds to validate, about a second to write
BEFORE = "crash-before"

pytestmark = pytest.mark.slow


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def mar(url: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from cli.main import main; main()", "--db", url, *args], cwd=ROOT,
        env={**os.environ, "MAR_USER": "rn.crash", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def kill_when(proc: subprocess.Popen, moment, what: str, timeout: float = 120) -> None:
    """SIGKILL the process as soon as `moment()` is true; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the process ended before {what}: {proc.stderr.read()}")
        if moment():
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            assert proc.returncode == -signal.SIGKILL
            return
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"never saw {what}")


# --- watching a writer from outside ---------------------------------------------------------


def sqlite_write_lock_held(path: str) -> bool:
    """Another connection is inside a write transaction (BEGIN IMMEDIATE cannot start)."""
    con = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise
    finally:
        con.close()


def wal_bytes(path: str) -> int:
    try:
        return os.path.getsize(path + "-wal")
    except FileNotFoundError:
        return 0


class SQLiteWriteWatch:
    """Mid-write: the write lock has been held for a while, and (for the store, whose page
    cache is small) the transaction has spilled a megabyte to the WAL."""

    def __init__(self, path: str, spilled: int = 1 << 20, held_for: float = 0.0):
        self.path = path
        self.base: int | None = None
        self.spilled = spilled
        self.held_for = held_for
        self.since: float | None = None

    def __call__(self) -> bool:
        if not os.path.exists(self.path):
            return False
        if self.base is None:
            self.base = wal_bytes(self.path)
        if not sqlite_write_lock_held(self.path):
            self.since = None
            return False
        now = time.monotonic()
        self.since = self.since or now
        return wal_bytes(self.path) >= self.base + self.spilled and now - self.since >= self.held_for


class PostgresWriteWatch:
    """Mid-write: another session has held the events table's write lock for 0.2 s."""

    def __init__(self, url: str):
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.since: float | None = None

    def __call__(self) -> bool:
        held = self.conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND c.relname = 'marstore_events' AND l.mode = 'ExclusiveLock' AND l.granted "
            "AND l.pid <> pg_backend_pid()").fetchone()[0]
        now = time.monotonic()
        if not held:
            self.since = None
            return False
        self.since = self.since or now
        return now - self.since >= 0.2

    def wait_for_sessions_to_end(self) -> None:
        """The killed client's sessions roll back once the server sees the socket closed."""
        for _ in range(600):
            others = self.conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()").fetchone()[0]
            if not others:
                return
            time.sleep(0.05)
        pytest.fail("the killed client's sessions did not end")

    def close(self) -> None:
        self.conn.close()


def raw_counts(url: str) -> tuple[int, int]:
    """(stored events, index rows) counted by the database itself."""
    if is_postgres(url):
        import psycopg

        with psycopg.connect(url) as conn:
            return tuple(conn.execute("SELECT (SELECT count(*) FROM marstore_events), "
                                      "(SELECT count(*) FROM mar_index)").fetchone())
    with sqlite3.connect(url) as con:
        return con.execute("SELECT (SELECT count(*) FROM stored_events), (SELECT count(*) FROM mar_index)").fetchone()


# --- the data -----------------------------------------------------------------------------------


def big_file(tmp_path: Path) -> tuple[str, list[dict]]:
    """Whole charts of new patients, plus more doses for the patient already stored."""
    events = hospital(PATIENTS, DOSES, prefix="crash") + [dose(BEFORE, n, "big") for n in range(60)]
    path = tmp_path / "big.jsonl"
    write_jsonl(path, events)
    return str(path), events


def store_before(url: str, tmp_path: Path) -> int:
    path = tmp_path / "before.jsonl"
    events = chart_start(BEFORE) + [dose(BEFORE, n) for n in range(5)]
    write_jsonl(path, events)
    finish(mar(url, "import", str(path)))
    return len(events)


# --- import killed mid-write ---------------------------------------------------------------------


def test_import_killed_mid_write_leaves_nothing_and_a_rerun_completes_it(store_url, tmp_path):
    before = store_before(store_url, tmp_path)
    path, events = big_file(tmp_path)
    watch = PostgresWriteWatch(store_url) if is_postgres(store_url) else SQLiteWriteWatch(store_url)
    try:
        kill_when(mar(store_url, "import", path), watch, "the import writing")
        if is_postgres(store_url):
            watch.wait_for_sessions_to_end()
    finally:
        if is_postgres(store_url):
            watch.close()

    # Nothing of the file: not one event, not one index row, in no stream.
    assert raw_counts(store_url) == (before, before)
    with EventStore(store_url) as store:
        assert len(list(store.iter_all())) == before
        assert store.stream("crash-00000") == []
        assert len(assert_stream_intact(store, store_url, BEFORE)) == before

    out = finish(mar(store_url, "import", path))
    assert out == f"{path}: {len(events)} added, 0 already stored ({PATIENTS + 1} patients changed)\n"
    out = finish(mar(store_url, "import", path))
    assert out == f"{path}: 0 added, {len(events)} already stored (0 patients changed)\n"
    assert raw_counts(store_url) == (before + len(events), before + len(events))
    with EventStore(store_url) as store:
        for pid in (BEFORE, "crash-00000", f"crash-{PATIENTS - 1:05d}"):
            assert_stream_intact(store, store_url, pid)
        assert len(store.stream(BEFORE)) == before + 60


# --- projection catch-up killed mid-way ------------------------------------------------------------


def positions(path: str) -> dict[str, int]:
    if not os.path.exists(path):
        return {}
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return dict(con.execute("SELECT name, position FROM _projections").fetchall())
    except sqlite3.OperationalError:  # not created yet
        return {}
    finally:
        con.close()


def test_projection_catch_up_killed_mid_way_is_consistent_and_completes(store_url, tmp_path):
    before = store_before(store_url, tmp_path)
    path, events = big_file(tmp_path)
    finish(mar(store_url, "import", path))
    with EventStore(store_url) as store:
        top = store.max_position()
        order = [p for p, _ in store.iter_all()]
    reference = str(tmp_path / "reference.db")
    finish(mar(store_url, "project", env={"MAR_PROJECTIONS": reference}))
    expected = read_models(reference)
    assert len(expected["events"]) == before + len(events)

    # `mar project` on new read models: one bulk transaction, killed inside it, rolls back whole.
    killed = str(tmp_path / "killed.db")
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {"MAR_PROJECTIONS": killed, "TMPDIR": str(temp)}
    # The runner's page cache holds the transaction, so nothing reaches the WAL before commit.
    proc = mar(store_url, "project", env=env)
    kill_when(proc, SQLiteWriteWatch(killed, spilled=0, held_for=0.05), "the projection writing")
    done = positions(killed)
    assert set(done.values()) == {0}, done
    assert read_models(killed)["events"] == []
    # a SQLite store is rebuilt with a scratch database, which the killed process could not remove
    left = list(temp.glob(f"mar-rebuild-*-{proc.pid}-*.db"))
    assert len(left) == (0 if is_postgres(store_url) else 1)
    out = finish(mar(store_url, "project", env=env))
    assert f"caught up with {before + len(events)} events" in out
    assert read_models(killed) == expected
    assert not any(p.exists() for p in left)  # removed by the next rebuild
    assert list(temp.iterdir()) == []

    # Incremental catch-up, batches of 1,000 after a first quarter, killed after some
    # batches: a clean prefix stays, and `mar project` finishes the rest.
    batched, quarter = str(tmp_path / "batched.db"), order[len(order) // 4]
    script = ("import sys; from mar.store import EventStore; from projections.runner import Runner\n"
              "with EventStore(sys.argv[1]) as s, Runner(s, sys.argv[2], batch_size=1000) as r:\n"
              "    r.catch_up(upto=int(sys.argv[3])); r.catch_up()")
    proc = subprocess.Popen([sys.executable, "-c", script, store_url, batched, str(quarter)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    kill_when(proc, lambda: min(positions(batched).values(), default=0) > quarter, "a batch committed")
    done = positions(batched)
    assert quarter < min(done.values()) and max(done.values()) < top, done
    prefix = read_models(batched)["events"]
    assert len(prefix) == order.index(done["events"]) + 1  # exactly the events up to its position
    finish(mar(store_url, "project", env={"MAR_PROJECTIONS": batched}))
    assert read_models(batched) == expected
