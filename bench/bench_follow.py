"""Latency of `mar project --follow`: from an event's commit to its projection, per backend.

A store holding a synthetic hospital (bench/generate.py, --store-events) is followed by
`mar project --follow` in its own process. This process then records --events doses, one
per write (as `mar record` does), each after a random pause of 0 to --pause seconds (so
that writes fall at every phase of a polling follower). For each it takes the time when the
store's insert (its commit) returned, then reads the read-model database every --poll
seconds until every projection's position has reached the event: the difference is the
latency. Printed per backend: median, p95 and max in ms, with the follower's own catch-up
times (from its output lines) for comparison.

Usage:  python bench/bench_follow.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
        [--events 200] [--store-events 10000] [--intervals 0.2] [--pause 0.2] [--poll 0.0005]
Without --url only SQLite is measured. The role of --url must be allowed to create
databases: a scratch database (mar_bench_follow_*) is made and dropped.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from common import hospital_file  # noqa: E402

from mar.importing import import_file  # noqa: E402
from mar.recording import Recorder  # noqa: E402
from mar.store import EventStore  # noqa: E402
from tests.integration.synthetic import chart_start, dose  # noqa: E402

PATIENT = "follow-bench"
CATCH_UP = re.compile(r"^\+\d+ events?, position \d+, (\d+) ms$")


class FollowerProcess:
    def __init__(self, url: str, projections: str, interval: float):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from cli.main import main; main()", "--db", url, "project", "--follow",
             "--interval", str(interval)],
            cwd=ROOT, env={**os.environ, "MAR_PROJECTIONS": projections}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if ": following at position" in line:
                self.ready.set()

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        if self.proc.returncode != 0:
            raise SystemExit(f"the follower failed: {self.proc.stderr.read()}")
        return self.lines[-1]

    def catch_up_ms(self) -> list[int]:
        return [int(m[1]) for m in map(CATCH_UP.match, self.lines) if m]


def committed_at(store: EventStore) -> list[float]:
    """Times (perf_counter) at which the store's insert returned, i.e. its commit did."""
    times: list[float] = []
    real = store.recorder.insert_events

    def insert(*args, **kwargs):
        result = real(*args, **kwargs)
        times.append(time.perf_counter())
        return result

    store.recorder.insert_events = insert
    return times


def measure(url: str, projections: str, events: int, interval: float, pause: float, poll: float) -> dict:
    with EventStore(url) as store:
        rec = Recorder(store, "rn.bench")
        rec.record(list(enumerate(chart_start(PATIENT), 1)))
        follower = FollowerProcess(url, projections, interval)
        if not follower.ready.wait(600):
            follower.proc.kill()
            raise SystemExit(f"the follower did not start: {follower.proc.stderr.read()}")
        read = sqlite3.connect(f"file:{projections}?mode=ro", uri=True, isolation_level=None)
        commits = committed_at(store)
        latencies = []
        rng = random.Random(6)
        for n in range(events):
            time.sleep(rng.uniform(0, pause))
            rec.record([(1, dose(PATIENT, n, "follow"))])
            committed = commits[-1]
            position = store.max_position()
            while read.execute("SELECT min(position) FROM _projections").fetchone()[0] < position:
                time.sleep(poll)
            latencies.append(time.perf_counter() - committed)
        read.close()
        summary = follower.stop()
    ms = sorted(x * 1000 for x in latencies)
    own = follower.catch_up_ms()[1:]  # the first one is the initial catch-up of the store
    return {
        "events": len(ms), "median": statistics.median(ms), "p95": ms[int(0.95 * (len(ms) - 1))], "max": ms[-1],
        "catch_up_median": statistics.median(own) if own else None, "catch_ups": len(own), "summary": summary,
    }


def sqlite_store(tmp: Path, base: Path) -> tuple[str, str]:
    url = str(tmp / "follow.db")
    with EventStore(url) as store:
        import_file(store, "bench", str(base))
    return url, str(tmp / "follow.projections.db")


def postgres_store(admin_url: str, tmp: Path, base: Path):
    import psycopg
    from urllib.parse import urlsplit, urlunsplit

    name = f"mar_bench_follow_{os.getpid()}"
    admin = psycopg.connect(admin_url, autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + name, query=""))
    with EventStore(url) as store:
        import_file(store, "bench", str(base))

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return url, str(tmp / "pg.projections.db"), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="admin URL of a PostgreSQL server (default: SQLite only)")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--store-events", type=int, default=10_000)
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.2], help="SQLite polling intervals")
    parser.add_argument("--pause", type=float, default=0.2, help="longest random pause before a write (s)")
    parser.add_argument("--poll", type=float, default=0.0005, help="this process's look at the read models (s)")
    args = parser.parse_args()
    base = hospital_file(args.store_events)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for interval in args.intervals:
            run = Path(tmp) / f"sqlite-{interval}"
            run.mkdir()
            url, projections = sqlite_store(run, base)
            rows.append((f"SQLite, polling every {interval:g} s",
                         measure(url, projections, args.events, interval, args.pause, args.poll)))
        if args.url:
            url, projections, drop = postgres_store(args.url, Path(tmp), base)
            try:
                rows.append(("PostgreSQL, notifications",
                             measure(url, projections, args.events, 0.2, args.pause, args.poll)))
            finally:
                drop()
    print(f"commit -> projection latency, {args.events} events one per write, random pause 0-{args.pause:g} s, "
          f"store of {args.store_events:,} events + {args.events}, {os.cpu_count()} cores\n")
    print("| store | median ms | p95 ms | max ms | follower's catch-up, median ms |")
    print("|---|---|---|---|---|")
    for label, r in rows:
        own = f"{r['catch_up_median']:.0f} ({r['catch_ups']} catch-ups)" if r["catch_up_median"] is not None else "-"
        print(f"| {label} | {r['median']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | {own} |")
    for label, r in rows:
        print(f"\n{label}: {r['summary']}")


if __name__ == "__main__":
    main()
