"""`mar project --follow` on every backend of `store_url`: a follower process keeps the read
models up to date while this process records; each event is applied exactly once, a follower
killed with SIGKILL leaves a clean prefix that a new one completes, SIGTERM and SIGINT stop
it with exit 0 and a summary."""
from __future__ import annotations

import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mar.recording import Recorder
from mar.store import EventStore
from projections.follow import RECHECK, Follower
from projections.runner import Runner, projections_path
from tests.integration.synthetic import chart_start, dose
from tests.integration.test_concurrency import read_models
from tests.integration.test_crash import SQLiteWriteWatch, finish, is_postgres, kill_when, mar, positions

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"^(?P<path>.+): stopped by (?P<signal>SIG\w+) at position (?P<position>\d+) "
                     r"after \d+\.\d s: (?P<events>\d+) events? in (?P<catch_ups>\d+) catch-ups?$")
APPLIED = re.compile(r"^\+(?P<events>\d+) events?, position (?P<position>\d+), \d+ ms$")

pytestmark = pytest.mark.slow


class FollowerProcess:
    """`mar project --follow` in a child process; its output lines arrive in a queue."""

    def __init__(self, url: str, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from cli.main import main; main()", "--db", url, "project", "--follow", *args],
            cwd=ROOT, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 15) -> str:
        """The next line matching `pattern` (earlier lines are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    pytest.fail(f"the follower ended: {self.proc.stderr.read()}")
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        self.proc.kill()
        pytest.fail(f"no line matching {pattern!r} within {timeout} s; saw {self.seen}")

    def stop(self, sig: int = signal.SIGTERM) -> list[str]:
        """Send `sig`; the exit status must be 0. Returns the lines not read yet."""
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("the follower did not stop")
        self.reader.join(5)
        assert self.proc.returncode == 0, self.proc.stderr.read()
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        self.seen += rest
        return rest


def record(store: EventStore, events: list[dict]) -> None:
    Recorder(store, "rn.follow").record(list(enumerate(events, 1)))


def caught_up(path: str, top: int, timeout: float = 5) -> float:
    """Seconds until every projection of `path` reached position `top` (fails after `timeout`)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        done = positions(path)
        if done and min(done.values()) >= top:
            return time.monotonic() - t0
        time.sleep(0.01)
    pytest.fail(f"read models at {positions(path)}, store at {top}, after {timeout} s")


def store_positions(store: EventStore) -> list[int]:
    return [p for p, _ in store.iter_all()]


def projected_positions(path: str) -> list[int]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT position FROM events ORDER BY position")]
    finally:
        con.close()


def rebuilt(store_url: str, tmp_path: Path) -> dict[str, list]:
    """The read models `mar project` makes from scratch (the CLI's projections, as the follower's)."""
    path = str(tmp_path / "reference.db")
    finish(mar(store_url, "project", env={"MAR_PROJECTIONS": path}))
    return read_models(path)


def test_follower_applies_each_event_once_as_it_is_stored(store_url, tmp_path):
    with EventStore(store_url) as store:
        record(store, chart_start("f-1") + [dose("f-1", n) for n in range(20)])
        path = projections_path(store_url)
        follower = FollowerProcess(store_url, "--interval", "0.05")
        how = "notified by PostgreSQL" if is_postgres(store_url) else "looking every 0.05 s"
        follower.expect(rf"^{re.escape(path)}: following at position 23 \({how}\); Ctrl-C or SIGTERM stops$")

        # Batches of 1, 7 and 40 events, for a new patient and a known one, each seen in time:
        # on PostgreSQL well before the follower's own look at the store (every RECHECK s),
        # so by the notification.
        in_time = RECHECK / 2 if is_postgres(store_url) else 5
        for batch in ([dose("f-1", 20)], chart_start("f-2") + [dose("f-2", n) for n in range(4)],
                      [dose("f-1", n) for n in range(21, 41)] + [dose("f-2", n) for n in range(4, 24)]):
            record(store, batch)
            assert caught_up(path, store.max_position()) < in_time

        top = store.max_position()
        rest = follower.stop(signal.SIGTERM)
        expected_positions = store_positions(store)
        reference = rebuilt(store_url, tmp_path)

    summary = SUMMARY.match(rest[-1])
    assert summary, follower.seen
    assert summary["signal"] == "SIGTERM" and int(summary["position"]) == top
    applied = [APPLIED.match(line) for line in follower.seen if line.startswith("+")]
    assert all(applied) and applied, follower.seen
    # Exactly once, by the follower's own count and by the read models' rows.
    assert sum(int(a["events"]) for a in applied) == int(summary["events"]) == len(expected_positions) == 71
    assert int(summary["catch_ups"]) == len(applied)
    assert [int(a["position"]) for a in applied] == sorted({int(a["position"]) for a in applied})
    assert projected_positions(path) == expected_positions
    done = positions(path)  # every projection the CLI runs, at the last event
    assert {"events", "medication"} <= done.keys() and set(done.values()) == {top}, done
    assert read_models(path) == reference


def test_a_follower_killed_mid_way_leaves_a_clean_prefix_and_a_new_one_completes_it(store_url, tmp_path):
    with EventStore(store_url) as store:
        record(store, chart_start("k-1") + chart_start("k-2"))
        path = projections_path(store_url)
        follower = FollowerProcess(store_url, "--interval", "0.01", "--quiet")
        caught_up(path, store.max_position(), timeout=15)

        # A writer records batches of 100 doses without pause while the follower applies them.
        stop = threading.Event()

        def write() -> None:
            with EventStore(store_url) as writer:
                n = 0
                while not stop.is_set() and n < 2000:
                    record(writer, [dose(f"k-{1 + i % 2}", n + i) for i in range(100)])
                    n += 100

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        try:
            # Killed while it holds the read models' write lock (inside a catch-up transaction),
            # after it has applied a few batches.
            lock_held = SQLiteWriteWatch(path, spilled=0)
            kill_when(follower.proc, lambda: min(positions(path).values(), default=0) > 300 and lock_held(),
                      "the follower applying events", timeout=20)
            killed_at = positions(path)
            prefix = projected_positions(path)
            # The events up to its recorded position, exactly once, and nothing after it.
            assert len(set(killed_at.values())) == 1, killed_at
            assert prefix == [p for p in store_positions(store) if p <= killed_at["events"]]

            follower = FollowerProcess(store_url, "--interval", "0.01")
            follower.expect(r"following at position \d+")
        finally:
            stop.set()
            thread.join(60)
        top = store.max_position()
        assert top > killed_at["events"]
        caught_up(path, top)
        rest = follower.stop(signal.SIGINT)
        assert SUMMARY.match(rest[-1])["signal"] == "SIGINT"
        assert projected_positions(path) == store_positions(store)
        assert read_models(path) == rebuilt(store_url, tmp_path)


def test_rebuild_then_follow_quietly_prints_only_the_summary(store_url):
    with EventStore(store_url) as store:
        record(store, chart_start("q-1"))
        path = projections_path(store_url)
        with Runner(store, path) as runner:
            runner.catch_up()
            runner.db.execute("DELETE FROM events WHERE position = 1")  # back once rebuilt
        follower = FollowerProcess(store_url, "--rebuild", "--quiet")
        deadline = time.monotonic() + 15
        while projected_positions(path) != [1, 2, 3]:
            assert time.monotonic() < deadline, "not rebuilt"
            time.sleep(0.02)
        record(store, [dose("q-1", 0)])
        caught_up(path, store.max_position())
        top = store.max_position()
    rest = follower.stop(signal.SIGTERM)
    assert len(follower.seen) == 1, follower.seen
    summary = SUMMARY.match(rest[0])
    # The rebuild's 3 events count as the first catch-up, the dose as the second.
    assert summary and (summary["position"], summary["events"], summary["catch_ups"]) == (str(top), "4", "2")


def test_interval_and_quiet_need_follow(runner, tmp_path):
    from cli.main import cli

    for args in (["--interval", "1"], ["-q"]):
        result = runner.invoke(cli, ["--db", str(tmp_path / "s.db"), "project", *args])
        assert result.exit_code == 2
        assert "--interval and --quiet go with --follow" in result.output


def test_a_gap_of_ids_wider_than_a_batch_does_not_stall_the_follower(store_url, tmp_path):
    """On PostgreSQL a rolled-back write consumes notification ids; the follower's batches
    (here of 5 events) must step over a gap of 50."""
    if not is_postgres(store_url):
        pytest.skip("SQLite positions have no gaps")
    import psycopg

    with EventStore(store_url) as store:
        record(store, chart_start("g-1"))
        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute("SELECT setval('marstore_events_notification_id_seq', 53)")
        record(store, [dose("g-1", n) for n in range(12)])
        with Runner(store, str(tmp_path / "rm.db"), batch_size=5) as runner, Follower(store, runner=runner) as f:
            runner.catch_up(upto=3)
            applied = f.catch_up()
            assert applied is not None and applied.events == 12 and applied.position == store.max_position() == 65
            assert f.catch_up() is None
            assert projected_positions(runner.path) == [1, 2, 3] + list(range(54, 66))


def test_a_follower_whose_connections_are_cut_takes_up_again(store_url, tmp_path):
    """A PostgreSQL restart or a network cut ends every connection of the follower: it says so
    on stderr, tries again and applies what was stored meanwhile, once."""
    if not is_postgres(store_url):
        pytest.skip("a SQLite file has no connection to lose")
    import psycopg

    with EventStore(store_url) as store:
        record(store, chart_start("c-1"))
        path = projections_path(store_url)
        follower = FollowerProcess(store_url)
        follower.expect(r"following at position 3 ")
        with psycopg.connect(store_url, autocommit=True) as conn:
            cut = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
        assert cut >= 1
        with EventStore(store_url) as writer:  # new connections: the store object above lost its own
            record(writer, [dose("c-1", n) for n in range(5)])
            top = writer.max_position()
        follower.expect(rf"^\+\d+ events?, position {top}, \d+ ms$", timeout=10)
        follower.stop(signal.SIGTERM)
        assert "trying again in 1 s" in follower.proc.stderr.read()
        assert projected_positions(path) == list(range(1, top + 1))
