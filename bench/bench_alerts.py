"""What raising alerts as events are projected costs (projections.alerts.projection).

  (a) rebuild of the 200,000-event synthetic hospital: Runner.rebuild with every projection,
      the same without the alerts projection, and the time spent in the alerts projection's
      own bulk methods (1,313 patients), wall and CPU, median of several runs;
  (b) catch-up after 100 new events on a 1,000,000-event store (events recorded first, not
      timed; then Runner.catch_up is timed), with the time spent in the alerts projection's
      apply and the number of patients it recomputed;
  (c) the engine alone: `patient_alerts` over every patient of the 200,000-event store, the
      events already parsed (CPU, no garbage collection).

Usage:  python bench/bench_alerts.py            (200,000 + 1,000,000 events; the stores are
                                                  kept in bench/out/alerts, ~5 minutes the first time)
        python bench/bench_alerts.py --quick    (20,000 + 100,000 events)
Input files come from bench/generate.py, as for bench/bench_projections.py (its store of the
rebuild is shared; the catch-up store is this benchmark's own, with 20,000 later events).
"""
from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_projections as bp  # noqa: E402

from mar.recording import Recorder  # noqa: E402
from mar.store import EventStore  # noqa: E402
from projections.alerts.projection import AlertsProjection  # noqa: E402
from projections.events_table import EventsProjection  # noqa: E402
from projections.medication import MedicationProjection  # noqa: E402
from projections.runner import Runner  # noqa: E402

OUT = HERE / "out" / "alerts"
LATER = 20_000


class Clock:
    """Wall and CPU seconds spent inside some methods (added up over calls)."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        self.calls = 0

    @contextmanager
    def timing(self):
        t, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - t
            self.cpu += time.process_time() - c
            self.calls += 1


class TimedAlerts(AlertsProjection):
    """The alerts projection, its work timed."""

    def __init__(self):
        self.clock = Clock()
        self.patients = 0
        self.shared = None

    def bulk_all(self, db, load):
        job = self._job
        with self.clock.timing():
            done = super().bulk_all(db, load)
        self.shared = job.shared if job is not None else None
        return done

    def bulk_patient(self, db, patient_id, events, sink):
        with self.clock.timing():
            super().bulk_patient(db, patient_id, events, sink)

    def apply(self, db, batch):
        self.patients += len({e["patient_id"] for _, e in batch.events})
        with self.clock.timing():
            super().apply(db, batch)


def load() -> float:
    return os.getloadavg()[0]


# --- (a) rebuild --------------------------------------------------------------------------------


def rebuild_once(store: EventStore, path: Path, projections) -> tuple[float, float, float]:
    """(wall, CPU of this process, CPU of the processes it started and waited for) in seconds."""
    bp.fresh(path)
    with Runner(store, str(path), projections) as runner:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t, c = time.perf_counter(), time.process_time()
        runner.rebuild()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, cpu, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def bench_rebuild(events: int, runs: int) -> dict:
    db, _ = bp.hospital_store(events, 0, 1, "p")
    path = OUT / "rebuild.projections.db"
    all_wall, all_cpu, base_wall, base_cpu, own_wall, own_cpu, other_cpu = [], [], [], [], [], [], []
    shared = []
    with EventStore(str(db)) as store:
        n = store.max_position()
        for _ in range(runs):
            w, c, _ = rebuild_once(store, path, [EventsProjection(), MedicationProjection()])
            base_wall.append(w)
            base_cpu.append(c)
            alerts = TimedAlerts()
            w, c, children = rebuild_once(store, path, [EventsProjection(), MedicationProjection(), alerts])
            all_wall.append(w)
            all_cpu.append(c)
            own_wall.append(alerts.clock.wall)
            own_cpu.append(alerts.clock.cpu)
            other_cpu.append(children)
            shared.append(alerts.shared)
        with Runner(store, str(path)) as runner:
            patients, rows = runner.db.execute(
                "SELECT (SELECT COUNT(*) FROM alert_state), (SELECT COUNT(*) FROM alerts)").fetchone()
    bp.fresh(path)
    med = statistics.median
    return {"events": n, "patients": patients, "alerts": rows, "all_s": med(all_wall), "all_cpu": med(all_cpu),
            "base_s": med(base_wall), "base_cpu": med(base_cpu), "own_s": med(own_wall), "own_cpu": med(own_cpu),
            "other_cpu": med(other_cpu), "shared": shared, "load": load()}


# --- (b) catch-up -------------------------------------------------------------------------------


def bench_catch_up(events: int, reps: int) -> dict:
    db, later = bp.hospital_store(events, LATER, 7, "q")
    models = OUT / f"q-{events // 1000}k.projections.db"
    with EventStore(str(db)) as store:
        used = store.max_position() - events
        if used + bp.NEW * reps > len(later):
            raise SystemExit(f"{db} has used its {len(later)} later events: delete it and {models} to start again")
        alerts = TimedAlerts()
        with Runner(store, str(models), [EventsProjection(), MedicationProjection(), alerts]) as runner:
            t = time.perf_counter()
            first = runner.catch_up()
            if first:
                print(f"  projected {first:,} events of {db.name} in {time.perf_counter() - t:.0f} s")
            recorder = Recorder(store, bp.USER)
            walls, cpus, own, patients = [], [], [], []
            for rep in range(reps):
                alerts.clock, alerts.patients = Clock(), 0
                start = used + rep * bp.NEW
                wall, cpu = bp.catch_up_once(runner, recorder, later[start:start + bp.NEW])
                walls.append(wall)
                cpus.append(cpu)
                own.append(alerts.clock.wall)
                patients.append(alerts.patients)
            size = store.max_position()
    med = statistics.median
    return {"store_events": size, "median_ms": med(walls) * 1000, "max_ms": max(walls) * 1000,
            "cpu_ms": med(cpus) * 1000, "alerts_ms": med(own) * 1000, "alerts_max_ms": max(own) * 1000,
            "patients": med(patients), "per_patient_ms": med(o / p * 1000 for o, p in zip(own, patients) if p),
            "reps": reps, "load": load()}


# --- (c) the engine alone -----------------------------------------------------------------------


def bench_engine(events: int, runs: int) -> dict:
    import sqlite3
    from itertools import groupby

    import orjson

    from projections.alerts.engine import patient_alerts

    db, _ = bp.hospital_store(events, 0, 1, "p")
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT originator_id, state FROM stored_events ORDER BY originator_id, originator_version")
    streams = [[orjson.loads(r[1]) for r in group] for _, group in groupby(rows, key=lambda r: r[0])]
    conn.close()
    n = sum(map(len, streams))
    gc.disable()
    try:
        best = float("inf")
        for _ in range(runs):
            c = time.process_time()
            for s in streams:
                patient_alerts(s)
            best = min(best, time.process_time() - c)
    finally:
        gc.enable()
    return {"events": n, "patients": len(streams), "cpu_s": best, "per_patient_ms": best / len(streams) * 1000,
            "us_per_event": best / n * 1e6, "load": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 and 100,000 events, fewer runs")
    parser.add_argument("--only", choices=["rebuild", "catch-up", "engine"], help="one part only")
    args = parser.parse_args()
    small, big = (20_000, 100_000) if args.quick else (200_000, 1_000_000)
    runs = 2 if args.quick else 3
    OUT.mkdir(parents=True, exist_ok=True)
    bp.OUT = OUT  # the catch-up store is ours (its later events get used up) ...
    shared = HERE / "out" / "proj"
    if args.only in (None, "engine"):
        bp.OUT = shared  # ... the 200,000-event store is bench_projections'
        e = bench_engine(small, runs)
        print(f"(c) engine: patient_alerts over {e['patients']:,} patients ({e['events']:,} events, parsed): "
              f"{e['cpu_s']:.2f} s CPU = {e['per_patient_ms']:.2f} ms per patient, {e['us_per_event']:.1f} us per "
              f"event; load {e['load']:.1f}")
    if args.only in (None, "rebuild"):
        bp.OUT = shared
        r = bench_rebuild(small, runs)
        print(f"(a) rebuild of {r['events']:,} events (median of {runs}): all projections {r['all_s']:.2f} s "
              f"= {r['events'] / r['all_s']:,.0f} events/s (CPU {r['all_cpu']:.2f} s); without alerts "
              f"{r['base_s']:.2f} s (CPU {r['base_cpu']:.2f} s)")
        print(f"  alerts of {r['patients']:,} patients ({r['alerts']:,} alerts): {r['other_cpu']:.2f} s CPU in the other "
              f"process, meanwhile; then {r['own_s']:.2f} s wall, {r['own_cpu']:.2f} s CPU in the rebuilding process "
              f"(bulk_all: its share of the patients, the inserts); patients (other, this) per run: "
              f"{', '.join(map(str, r['shared']))}; load {r['load']:.1f}")
    if args.only in (None, "catch-up"):
        bp.OUT = OUT
        c = bench_catch_up(big, 5 if args.quick else 10)
        print(f"(b) catch-up of {bp.NEW} new events on a {c['store_events']:,}-event store, over {c['reps']} runs: "
              f"median {c['median_ms']:.0f} ms, max {c['max_ms']:.0f} ms (CPU median {c['cpu_ms']:.0f} ms); "
              f"in alerts: median {c['alerts_ms']:.0f} ms, max {c['alerts_max_ms']:.0f} ms, {c['patients']:.0f} "
              f"patients, {c['per_patient_ms']:.2f} ms each; figure < {bp.FIGURES['catch_up_ms']:.0f} ms; "
              f"load {c['load']:.1f}")


if __name__ == "__main__":
    main()
