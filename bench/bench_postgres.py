"""PostgreSQL figures of issue 6, measured on this machine against a server you give.

  (a) writer throughput: 1 and then 4 processes, each recording one dose per write
      (Recorder.record of one line, as `mar record` does) for its own patient, for a fixed
      time; events/s of all writers together, and the share of each write spent in the
      store's append (the part the library's table lock serialises);
  (b) bulk import of a synthetic hospital file (bench/generate.py) through
      mar.importing.import_file, beside a plain batched INSERT of the same rows (the 4
      columns mar stored, 1,000 rows per statement and transaction) in the same run.

Usage:  python bench/bench_postgres.py --url postgresql://postgres@127.0.0.1:5432/postgres
        [--events 100000] [--seconds 10] [--writers 1 4 1 4 1 4] [--sqlite] [--append-only]
The role must be allowed to create databases: each part uses a scratch database
(mar_bench_*), dropped afterwards. --sqlite runs (a) on a SQLite file too, for comparison;
--append-only adds writers that skip validation and only append (how the store alone scales).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from common import hospital_file  # noqa: E402
import psycopg  # noqa: E402

from mar.importing import import_file  # noqa: E402
from mar.recording import Recorder  # noqa: E402
from mar.store import EventStore, Record, stream_id  # noqa: E402
from tests.integration.synthetic import chart_start, dose  # noqa: E402

USER = "bench"
FIGURES = {"scaling": 2.0, "import_ratio": 0.1}


# --- scratch databases -------------------------------------------------------------------------


class Server:
    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.conn = psycopg.connect(admin_url, autocommit=True)
        self.made: list[str] = []

    def database(self, label: str) -> str:
        name = f"mar_bench_{label}_{os.getpid()}"
        self.conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return urlunsplit(urlsplit(self.admin_url)._replace(path="/" + name, query=""))

    def describe(self) -> dict:
        settings = {name: self.conn.execute(f"SHOW {name}").fetchone()[0]
                    for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers")}
        settings["psycopg"] = f"{psycopg.__version__} ({psycopg.pq.__impl__} implementation)"
        return settings

    def close(self) -> None:
        for name in self.made:
            self.conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.conn.close()


# --- (a) writers -------------------------------------------------------------------------------


def _writer(url: str, patient_id: str, seconds: float, start, results, append_only: bool = False) -> None:
    """Record one dose per write until the time is up; report writes, time, time in append.

    append_only: skip validation and the chart, append one ready-made record per write (the
    store's share of a write, to see how the store alone scales)."""
    with EventStore(url) as store:
        rec = _Appender(store, patient_id) if append_only else Recorder(store, f"rn.{patient_id}")
        timing = _instrument(store)
        start.wait(120)
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            rec.record([(1, dose(patient_id, n, "bench"))])
            n += 1
        results.put((n, time.perf_counter() - t0, timing["append"], time.process_time() - c0, timing["lock"]))


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat (all cores)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


class _Appender:
    """Writes like Recorder.record, minus parsing, checks and loading the chart."""

    def __init__(self, store: EventStore, patient_id: str):
        self.store, self.patient_id = store, patient_id
        self.version = len(store.stream(patient_id))

    def record(self, lines) -> None:
        (_, event), = lines
        data = {**event, "event_id": event["idempotency_key"], "recorded_by": "bench", "v": 1}
        self.version += 1
        self.store.append([Record(stream_id(self.patient_id), self.version, data)],
                          [(data["event_id"], "digest-" + data["event_id"])])


def _instrument(store: EventStore) -> dict[str, float]:
    """Sums, in seconds: time in the recorder's insert_events (the append, every backend),
    and from queuing the table lock to the commit's return (PostgreSQL only: at one writer,
    the part of each write that no other writer can overlap)."""
    totals = {"append": 0.0, "lock": 0.0}
    recorder = store.recorder
    real_insert = recorder.insert_events
    real_lock = getattr(recorder, "_lock_table", None)
    locked_at: list[float | None] = [None]

    def lock(curs):
        locked_at[0] = time.perf_counter()
        return real_lock(curs)

    def insert(*args, **kwargs):
        t0, locked_at[0] = time.perf_counter(), None
        try:
            return real_insert(*args, **kwargs)
        finally:
            t1 = time.perf_counter()
            totals["append"] += t1 - t0
            if locked_at[0] is not None:
                totals["lock"] += t1 - locked_at[0]

    recorder.insert_events = insert
    if real_lock is not None:
        recorder._lock_table = lock
    return totals


def bench_writers(url: str, writers: int, seconds: float, append_only: bool = False) -> dict:
    patients = [f"writer-{w}" for w in range(writers)]
    with EventStore(url) as store:
        Recorder(store, USER).record(list(enumerate([e for p in patients for e in chart_start(p)], 1)))
        before = store.max_position()
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(writers + 1), ctx.Queue()  # this process waits too: it times the machine
    procs = [ctx.Process(target=_writer, args=(url, p, seconds, start, results, append_only)) for p in patients]
    for p in procs:
        p.start()
    start.wait(120)
    busy0, total0 = machine_busy()
    out = [results.get(timeout=seconds + 300) for _ in procs]
    busy1, total1 = machine_busy()
    for p in procs:
        p.join(60)
    writes = sum(n for n, *_ in out)
    wall = max(t for _, t, *_ in out)
    with EventStore(url) as store:
        stored = len([1 for p, _ in store.iter_all(after=before)])
    assert stored == writes, f"{writes} writes reported, {stored} stored"
    r = {"writers": writers, "append_only": append_only, "writes": writes, "seconds": wall, "rate": writes / wall,
         "append_share": sum(o[2] for o in out) / sum(o[1] for o in out),
         "ms_per_write": 1000 * sum(o[1] for o in out) / writes,
         "cpu_ms_per_write": 1000 * sum(o[3] for o in out) / writes,
         "lock_ms_per_write": 1000 * sum(o[4] for o in out) / writes,
         "load": os.getloadavg()[0],
         # the whole machine: writers, the server, and anything else running (see load)
         "cores_busy": (busy1 - busy0) / (total1 - total0) * os.cpu_count(),
         "machine_cpu_ms_per_write": 1000 * (busy1 - busy0) / writes}
    print(f"  {writers} {'appender' if append_only else 'writer'}(s): {writes} writes in {wall:.1f} s = {r['rate']:,.0f}/s; "
          f"{r['ms_per_write']:.2f} ms per write per writer, {100 * r['append_share']:.0f}% of it in append, "
          f"{r['cpu_ms_per_write']:.2f} ms CPU in the writer, {r['machine_cpu_ms_per_write']:.2f} ms on the "
          f"machine ({r['cores_busy']:.2f} cores busy), {r['lock_ms_per_write']:.2f} ms under the table "
          f"lock; load {r['load']:.1f}",
          file=sys.stderr)
    return r


# --- (b) import --------------------------------------------------------------------------------


RAW_TABLE = ("CREATE TABLE raw_events (originator_id uuid NOT NULL, originator_version bigint NOT NULL, "
             "topic text, state bytea, PRIMARY KEY (originator_id, originator_version))")
RAW_INSERT = ("INSERT INTO raw_events SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], "
              "%s::bytea[])")


def stored_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT originator_id, originator_version, topic, state "
                            "FROM marstore_events ORDER BY notification_id").fetchall()


def plain_read(url: str, where: str = "", params: tuple = ()) -> float:
    """Seconds to SELECT the stored rows (those matching `where`) and orjson-decode each:
    the read limit beside which the projections and verify are measured."""
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        for (state,) in conn.execute(f"SELECT state FROM marstore_events {where} ORDER BY notification_id", params):
            orjson.loads(state)
        return time.perf_counter() - t0


def raw_insert(url: str, rows: list[tuple], batch: int = 1000) -> float:
    """The physical limit: the same rows, one multi-row INSERT and one commit per batch."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        t0 = time.perf_counter()
        for i in range(0, len(rows), batch):
            columns = [list(c) for c in zip(*rows[i:i + batch])]
            with conn.transaction():
                conn.execute(RAW_INSERT, columns)
        return time.perf_counter() - t0


def bench_import(server: Server, events: int, label: str = "import") -> dict:
    """Import into a new scratch database (kept until server.close(); its URL is in the result)."""
    path = hospital_file(events)
    url = server.database(label)
    with EventStore(url) as store:
        c0, t0 = time.process_time(), time.perf_counter()
        summary = import_file(store, USER, str(path))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = stored_rows(url)
    raw_seconds = raw_insert(url, rows)
    r = {"events": summary.added, "seconds": seconds, "rate": summary.added / seconds,
         "cpu_seconds": cpu, "raw_seconds": raw_seconds, "raw_rate": len(rows) / raw_seconds,
         "file": str(path.relative_to(ROOT)), "url": url}
    r["ratio"] = r["rate"] / r["raw_rate"]
    print(f"  import: {summary.added} events in {seconds:.2f} s = {r['rate']:,.0f}/s "
          f"({cpu:.1f} CPU s in this process); raw {r['raw_rate']:,.0f}/s; ratio {r['ratio']:.3f}",
          file=sys.stderr)
    return r


# --- report ------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(r: dict) -> None:
    s = r["server"]
    print(f"PostgreSQL {s['server_version']} (fsync {s['fsync']}, synchronous_commit "
          f"{s['synchronous_commit']}, shared_buffers {s['shared_buffers']}); psycopg {s['psycopg']}; "
          f"{os.cpu_count()} CPUs")
    print(f"{'figure':<62} {'measured':>12} {'target':>10}")
    for backend in ("postgres", "sqlite", "postgres_append_only"):
        runs = r.get(f"writers_{backend}")
        if not runs:
            continue
        by_count: dict[int, list[dict]] = {}
        for w in runs:
            by_count.setdefault(w["writers"], []).append(w)
        medians = {}
        for count, group in sorted(by_count.items()):
            med = {k: statistics.median(g[k] for g in group) for k in
                   ("rate", "ms_per_write", "append_share", "cpu_ms_per_write", "lock_ms_per_write",
                    "machine_cpu_ms_per_write", "cores_busy")}
            medians[count] = med
            runs_text = ", ".join(f"{g['rate']:,.0f}" for g in group)
            what = "appends only" if backend.endswith("append_only") else "one dose per write"
            label = f"(a) {backend.split('_')[0]}: {count} writer(s), {what}, writes/s"
            print(f"{label:<62} {med['rate']:>12,.0f}   (median of {runs_text})")
            print(f"{'      per write: ms; in append; writer CPU ms; ms under lock':<62} "
                  f"{med['ms_per_write']:>6.2f}; {100 * med['append_share']:.0f}%; "
                  f"{med['cpu_ms_per_write']:.2f}; {med['lock_ms_per_write']:.2f}")
            print(f"{'      machine CPU ms per write; cores busy (all processes)':<62} "
                  f"{med['machine_cpu_ms_per_write']:>6.2f}; {med['cores_busy']:.2f} of {os.cpu_count()}")
        if len(medians) > 1:
            low, high = min(medians), max(medians)
            scale = medians[high]["rate"] / medians[low]["rate"]
            label = f"    {backend}: {high} writers / {low} writer(s), medians"
            target = f">= {FIGURES['scaling']:g}x" if backend == "postgres" else ""
            ok = verdict(scale >= FIGURES["scaling"]) if backend == "postgres" else ""
            print(f"{label:<62} {scale:>11.2f}x {target:>10}  {ok}")
            paired = [b["rate"] / a["rate"] for a, b in zip(by_count[low], by_count[high])]
            print(f"{'      run by run':<62} " + ", ".join(f"{x:.2f}x" for x in paired))
    if "import" in r:
        a = r["import"]
        print(f"{'(b) import ' + format(a['events'], ',') + ' events, events/s':<62} {a['rate']:>12,.0f}")
        print(f"{'    raw batched INSERT of the same rows, rows/s':<62} {a['raw_rate']:>12,.0f}")
        print(f"{'    ratio import / raw':<62} {a['ratio']:>12.3f} {'>= 0.1':>10}  "
              f"{verdict(a['ratio'] >= FIGURES['import_ratio'])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--url", default=os.environ.get("MAR_BENCH_POSTGRES"),
                    help="admin URL of the server (env MAR_BENCH_POSTGRES)")
    ap.add_argument("--events", type=int, default=100_000, help="import file size (default 100,000)")
    ap.add_argument("--seconds", type=float, default=10, help="how long each writer run lasts (default 10)")
    ap.add_argument("--writers", type=int, nargs="+", default=[1, 4, 1, 4, 1, 4],
                    help="writer counts, run in this order (default 1 4 1 4 1 4: medians of three)")
    ap.add_argument("--only", choices=["writers", "import"], action="append", help="run only these parts")
    ap.add_argument("--sqlite", action="store_true", help="run the writers on a SQLite file too")
    ap.add_argument("--append-only", action="store_true",
                    help="also run writers that only append ready-made records (the store alone)")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = ap.parse_args(argv)
    if not args.url:
        ap.error("give --url postgresql://user@host:port/dbname (a role that may create databases)")
    parts = set(args.only or ["writers", "import"])
    server = Server(args.url)
    results: dict = {"server": server.describe()}
    try:
        if "writers" in parts:
            results["writers_postgres"] = [bench_writers(server.database(f"w{n}"), n, args.seconds)
                                           for n in args.writers]
            if args.append_only:
                results["writers_postgres_append_only"] = [
                    bench_writers(server.database(f"a{n}"), n, args.seconds, append_only=True) for n in args.writers]
            if args.sqlite:
                with tempfile.TemporaryDirectory(prefix="mar-bench-") as tmp:
                    results["writers_sqlite"] = [bench_writers(str(Path(tmp) / f"run{i}-w{n}.db"), n, args.seconds)
                                                 for i, n in enumerate(args.writers)]
        if "import" in parts:
            results["import"] = bench_import(server, args.events)
    finally:
        server.close()
    report(results)
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
