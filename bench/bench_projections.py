"""Read-side figures of issue 3, measured on this machine.

  (a) full rebuild (Runner.rebuild) of a 200,000-event synthetic hospital, of every
      registered projection and of the built-in ones alone (events, medication), beside a
      plain SQLite read of the same stored rows with an orjson decode of each, interleaved
      in the same run (CPU includes child processes a projection may start); the read is also
      decoded with the standard library's json module, for reference;
  (b) catch-up after 100 new events on a 1,000,000-event store (the new events are
      recorded first, not timed; then Runner.catch_up is timed), several times;
  (b') the same for one patient whose record is long (10,000 and 50,000 events): not a figure
      of the issue, but the cost that grows with a record (the alerts refold it whole);
  (c) `mar regimen` and `mar totals` for one patient, end to end (process start included),
      on the reference case and on the busiest patient of the 200,000-event store.

Usage:  python bench/bench_projections.py            (200,000 + 1,000,000 events; ~10 minutes
                                                       the first time, stores are kept in bench/out/proj)
        python bench/bench_projections.py --quick    (20,000 + 100,000 events)
Input files come from bench/generate.py (synthetic hospital, charting order).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "proj"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import generate  # noqa: E402
from common import fresh  # noqa: E402

from mar.recording import Recorder  # noqa: E402
from mar.store import EventStore  # noqa: E402
from projections.runner import Runner  # noqa: E402

USER = "bench"
FIGURES = {"rebuild_rate": 50_000, "rebuild_ratio": 0.2, "catch_up_ms": 200.0, "query_s": 0.5}
NEW = 100
LATER_RUNS = 200  # batches of NEW later events kept for catch-up runs (each run uses one)


def load(path: Path) -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def hospital_store(events: int, extra: int, seed: int, prefix: str) -> tuple[Path, list[bytes]]:
    """A store with `events` events of a synthetic hospital, and `extra` later lines to add."""
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}-{events // 1000}k"
    jsonl = OUT / f"{name}+{extra}.jsonl"
    if not jsonl.exists():
        generate.write_jsonl(generate.hospital(events=events + extra, seed=seed, prefix=prefix), jsonl)
    lines = jsonl.read_bytes().splitlines()
    db = OUT / f"{name}.db"
    marker = OUT / f"{name}.imported"
    made_from = f"{events} {jsonl.name}\n"  # the later lines must continue the stream the store holds
    if not (db.exists() and marker.exists() and marker.read_text() == made_from):
        fresh(db)
        fresh(OUT / f"{name}.projections.db")  # read models of the store replaced
        t = time.perf_counter()
        with EventStore(str(db)) as store:
            recorder = Recorder(store, USER)
            for i in range(0, events, 50_000):
                recorder.record([(n, line) for n, line in enumerate(lines[i:min(i + 50_000, events)], i + 1)])
        marker.write_text(made_from)
        print(f"  imported {events:,} events into {db} in {time.perf_counter() - t:.0f} s")
    return db, lines[events:]


# --- (a) rebuild -------------------------------------------------------------------------------


def plain_read(db: Path, where: str = "", params: tuple = (), decode=orjson.loads) -> float:
    """Seconds to SELECT the stored rows (those matching `where`) and decode each (orjson,
    the decoder mar uses, unless told)."""
    conn = sqlite3.connect(db)
    t = time.perf_counter()
    n = 0
    for (state,) in conn.execute(f"SELECT state FROM stored_events {where} ORDER BY rowid", params):
        decode(state)
        n += 1
    elapsed = time.perf_counter() - t
    conn.close()
    return elapsed


def cpu_seconds() -> float:
    """CPU of this process and of its children that have ended (a projection may compute in
    another process)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def rebuild_once(store: EventStore, work: Path, projections: list | None = None) -> tuple[float, float, int]:
    """(wall, CPU, events) of Runner.rebuild into a new file; every registered projection
    unless `projections` is given."""
    path = fresh(work / "rebuild.projections.db")
    with Runner(store, str(path), projections) as runner:
        t, c = time.perf_counter(), cpu_seconds()
        count = runner.rebuild()
        return time.perf_counter() - t, cpu_seconds() - c, count


def built_in() -> list:
    """The projections of this module's issue: events and medication (no registered extras)."""
    from projections.events_table import EventsProjection
    from projections.medication import MedicationProjection

    return [EventsProjection(), MedicationProjection()]


def bench_rebuild(events: int, runs: int, work: Path) -> dict:
    """Plain read, rebuild of every registered projection and of the built-in ones only,
    interleaved, `runs` times each."""
    from projections.runner import default_projections

    db, _ = hospital_store(events, 0, 1, "p")
    names = [p.name for p in default_projections()]
    with EventStore(str(db)) as store:
        n = store.max_position()
        plain, times = [], {"all": [], "built-in": []}
        cpu = {"all": [], "built-in": []}
        for _ in range(runs):
            for kind in ("all", "built-in"):
                plain.append(plain_read(db))
                wall, c, count = rebuild_once(store, work, None if kind == "all" else built_in())
                assert count == n, (count, n)
                times[kind].append(wall)
                cpu[kind].append(c)
        plain.append(plain_read(db))
        stdlib = [plain_read(db, decode=json.loads) for _ in range(runs)]
    p, j = statistics.median(plain), statistics.median(stdlib)
    out = {"events": n, "plain_s": p, "plain_rate": n / p, "stdlib_json_s": j, "load": load(db),
           "projections": names}
    for kind in times:
        r = statistics.median(times[kind])
        out[kind] = {"rebuild_s": r, "rebuild_rate": n / r, "rebuild_cpu_s": statistics.median(cpu[kind]),
                     "ratio": p / r, "ratio_stdlib_json": j / r, "best_rebuild_s": min(times[kind])}
    return out


# --- (b) catch-up ------------------------------------------------------------------------------


def catch_up_once(runner: Runner, recorder: Recorder, lines: list[bytes]) -> tuple[float, float]:
    """Record `lines` (not timed), then time the catch-up that projects them: (wall, CPU) seconds."""
    recorder.record([(n, line) for n, line in enumerate(lines, 1)])
    t, c = time.perf_counter(), time.process_time()
    applied = runner.catch_up()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert applied == len(lines), applied
    return wall, cpu


def bench_catch_up(events: int, reps: int, work: Path) -> dict:
    """`reps` timed catch-ups of NEW events on the kept store, then one more counted in pages."""
    name = f"q-{events // 1000}k"
    db, later = hospital_store(events, NEW * LATER_RUNS, 7, "q")
    with EventStore(str(db)) as store:
        used = store.max_position() - events
    if used + NEW * (reps + 1) > len(later):  # each run records later events: start again from the file
        print(f"  {db.name} has recorded {used:,} of its {len(later):,} later events: importing it again")
        (OUT / f"{name}.imported").unlink()
        db, later = hospital_store(events, NEW * LATER_RUNS, 7, "q")
        used = 0
    with EventStore(str(db)) as store:
        with Runner(store, str(OUT / f"{name}.projections.db")) as runner:
            t = time.perf_counter()
            first = runner.catch_up()
            if first:
                print(f"  projected {first:,} events of {db.name} in {time.perf_counter() - t:.0f} s")
            recorder = Recorder(store, USER)
            figures = catch_ups(runner, recorder, later[used:], reps)
            pages = pages_written(runner, recorder, later[used + NEW * reps: used + NEW * (reps + 1)])
            size = store.max_position()
    return {"store_events": size, **figures, **pages, "load": load(db)}


def pages_written(runner: Runner, recorder: Recorder, lines: list[bytes]) -> dict:
    """Pages of the read-model database that one catch-up of `lines` writes (frames of the
    write-ahead log, automatic checkpoints off for that catch-up alone), and the tables and
    indexes with most: what each catch-up adds to the log, and so how often a checkpoint
    (which copies the log into the database) falls on a catch-up."""
    db = runner.db
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA wal_autocheckpoint=0")
    try:
        catch_up_once(runner, recorder, lines)
        size, frames = wal_frames(Path(f"{runner.path}-wal"))
    finally:
        db.execute("PRAGMA wal_autocheckpoint=1000")
    owner = dict(db.execute("SELECT pageno, name FROM dbstat"))
    by_name: dict[str, int] = {}
    for page in frames:
        by_name[owner.get(page, "?")] = by_name.get(owner.get(page, "?"), 0) + 1
    top = sorted(by_name.items(), key=lambda x: -x[1])[:5]
    return {"pages": len(frames), "page_kib": size // 1024, "pages_top": top}


def wal_frames(path: Path) -> tuple[int, list[int]]:
    """The page size and the page number of each frame of a SQLite write-ahead log (its header:
    32 bytes, the page size at offset 8; each frame: a 24-byte header starting with the page
    number, then the page)."""
    data = path.read_bytes()
    if len(data) < 32:
        return 0, []
    size = int.from_bytes(data[8:12], "big")
    return size, [int.from_bytes(data[i:i + 4], "big") for i in range(32, len(data) - size - 23, 24 + size)]


def catch_ups(runner: Runner, recorder: Recorder, lines: list[bytes], reps: int) -> dict:
    """`reps` catch-ups, each of the next NEW of `lines`: median and max wall, median CPU (ms)."""
    times, cpu = [], []
    for rep in range(reps):
        wall, c = catch_up_once(runner, recorder, lines[rep * NEW: (rep + 1) * NEW])
        times.append(wall)
        cpu.append(c)
    return {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000,
            "cpu_median_ms": statistics.median(cpu) * 1000, "reps": reps}


def bench_long_record(events: int, reps: int, work: Path) -> dict:
    """Catch-up of NEW new events of one patient whose record already holds `events` (a
    long-stay resident): the alerts projection refolds the whole record of each patient a
    batch touches, so this cost follows the record's length, not the new events."""
    lines = [orjson.dumps(e) for e in generate.one_patient(events + NEW * reps)]
    db = fresh(work / "long.db")
    with EventStore(str(db)) as store:
        recorder = Recorder(store, USER)
        recorder.record([(n, line) for n, line in enumerate(lines[:events], 1)])
        with Runner(store, str(work / "long.projections.db")) as runner:
            runner.catch_up()
            figures = catch_ups(runner, recorder, lines[events:], reps)
    return {"record_events": events, **figures, "load": load(db)}


# --- (c) point queries -------------------------------------------------------------------------


def mar(*args: str) -> float:
    exe = shutil.which("mar") or sys.exit("the mar command is not installed (pip install -e .)")
    env = dict(os.environ, MAR_USER=USER)
    t = time.perf_counter()
    out = subprocess.run([exe, *args], capture_output=True, env=env)
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(out.stderr.decode()[-500:])
    return elapsed


def busiest_patient(runner: Runner) -> tuple[str, int, str, str]:
    """The patient with the most events in the caught-up read models: (id, events, last day
    with totals, horizon)."""
    busiest, count = runner.db.execute(
        "SELECT patient_id, COUNT(*) FROM events GROUP BY patient_id ORDER BY 2 DESC LIMIT 1").fetchone()
    day = runner.db.execute("SELECT MAX(date) FROM daily_totals WHERE patient_id = ?", (busiest,)).fetchone()[0]
    at = runner.db.execute("SELECT horizon FROM patients WHERE patient_id = ?", (busiest,)).fetchone()[0]
    return busiest, count, day, at


def bench_queries(work: Path, events: int, runs: int) -> list[dict]:
    ref = work / "ref.db"
    fresh(ref)
    env_user = os.environ.get("MAR_USER")
    os.environ["MAR_USER"] = USER
    subprocess.run([shutil.which("mar"), "--db", str(ref), "import", str(ROOT / "fixtures" / "seed_case.jsonl")],
                   check=True, capture_output=True)
    if env_user is None:
        os.environ.pop("MAR_USER")
    db, _ = hospital_store(events, 0, 1, "p")
    conn = sqlite3.connect(db)
    busiest = None
    with EventStore(str(db)) as store, Runner(store) as runner:
        runner.catch_up()
        busiest, count, day, at = busiest_patient(runner)
    conn.close()
    cases = [
        ("floor: mar --version", ["--version"]),
        ("regimen ref-001 --at POD 30 --json", ["--db", str(ref), "regimen", "ref-001", "--at", "2007-11-14T12:00:00-08:00", "--json"]),
        ("totals ref-001 --json (113 days)", ["--db", str(ref), "totals", "ref-001", "--json"]),
        ("totals ref-001 --by hour (1 day)", ["--db", str(ref), "totals", "ref-001", "--by", "hour", "--from", "2007-10-16",
                                              "--to", "2007-10-16", "--json"]),
        ("totals ref-001 --known-at (refold)", ["--db", str(ref), "totals", "ref-001", "--known-at", "2008-03-01T00:00:00Z",
                                                "--json"]),
        (f"regimen {busiest} ({count} events) --at its horizon", ["--db", str(db), "regimen", busiest, "--at", at, "--json"]),
        (f"totals {busiest} --json", ["--db", str(db), "totals", busiest, "--json"]),
        (f"totals {busiest} --by hour (last day)", ["--db", str(db), "totals", busiest, "--by", "hour", "--from", day,
                                                     "--to", day, "--json"]),
    ]
    results = []
    for label, args in cases:
        mar(*args)  # the first run catches up (imports) and warms the page cache
        times = [mar(*args) for _ in range(runs)]
        results.append({"case": label, "median_s": statistics.median(times), "max_s": max(times)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 and 100,000 events, fewer runs")
    args = parser.parse_args()
    small, big = (20_000, 100_000) if args.quick else (200_000, 1_000_000)
    runs = 2 if args.quick else 3
    work = Path(tempfile.mkdtemp(prefix="mar-bench-proj-"))
    try:
        print(f"(a) full rebuild, {small:,} events (median of {runs})")
        r = bench_rebuild(small, runs, work)
        print(f"  plain SQLite read + orjson decode: {r['plain_s']:.2f} s = {r['plain_rate']:,.0f} events/s")
        for kind, label in (("all", f"all registered ({', '.join(r['projections'])})"),
                            ("built-in", "events and medication only")):
            x = r[kind]
            print(f"  rebuild, {label}: {x['rebuild_s']:.2f} s = {x['rebuild_rate']:,.0f} events/s "
                  f"(best {x['best_rebuild_s']:.2f} s; CPU {x['rebuild_cpu_s']:.2f} s), "
                  f"ratio to the plain read {x['ratio']:.3f}")
        print(f"  figures: >= {FIGURES['rebuild_rate']:,}/s and ratio >= {FIGURES['rebuild_ratio']}; load {r['load']:.1f}")
        print(f"  (the same read decoded with the standard library's json module: {r['stdlib_json_s']:.2f} s; "
              f"ratios to it {r['all']['ratio_stdlib_json']:.3f} and {r['built-in']['ratio_stdlib_json']:.3f}. "
              f"The figure holds to orjson, the decoder mar uses and the faster read.)")
        print(f"(b) catch-up of {NEW} new events on a {big:,}-event store")
        c = bench_catch_up(big, 5 if args.quick else 20, work)
        print(f"  store of {c['store_events']:,} events: median {c['median_ms']:.0f} ms, max {c['max_ms']:.0f} ms "
              f"(CPU median {c['cpu_median_ms']:.0f} ms) over {c['reps']} runs; figure < {FIGURES['catch_up_ms']:.0f} ms;"
              f" load {c['load']:.1f}")
        most = ", ".join(f"{name} {n}" for name, n in c["pages_top"])
        print(f"  one more catch-up of {NEW} events wrote {c['pages']} pages of {c['page_kib']} KiB to the read models "
              f"(most: {most})")
        print(f"(b') catch-up of {NEW} new events of one patient with a long record (not a figure of the issue)")
        for size in (10_000,) if args.quick else (10_000, 50_000):
            x = bench_long_record(size, 5 if args.quick else 10, work)
            print(f"  record of {x['record_events']:,} events: median {x['median_ms']:.0f} ms, max {x['max_ms']:.0f} ms "
                  f"(CPU median {x['cpu_median_ms']:.0f} ms) over {x['reps']} runs; load {x['load']:.1f}")
        print(f"(c) read commands end to end (median of {runs + 2}, after one warm-up run)")
        for q in bench_queries(work, small, runs + 2):
            print(f"  {q['case']:<55} {q['median_s']:.2f} s (max {q['max_s']:.2f})")
        print(f"  figure: < {FIGURES['query_s']} s; load {load(work):.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
