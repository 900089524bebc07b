"""Transitions of care: `mar reconcile` and `mar handoff` for one patient, end to end.

Imports the reference case (fixtures/seed_case.jsonl, patient ref-001, 1,431 events) into
a scratch store, then runs each command N times as a fresh process (the way a handoff script
calls it) and reports wall-clock and CPU time per run (min and median), beside the floor
of starting `mar` at all (`mar --help`), of importing the store (which every command reading
it pays: the event models are built at import), and the in-process library time.
The issue asks for under 0.5 s end to end.

    python bench/bench_transitions.py [--runs N]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "fixtures" / "seed_case.jsonl"
PATIENT = "ref-001"


def discharge_times() -> list[str]:
    events = [json.loads(x) for x in FIXTURE.read_text().splitlines() if x.strip()]
    return [e["effective_at"] for e in events if e["type"] == "discharged"]


def timed(cmd: list[str], env: dict, ok=(0,)) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def in_process(db: str, at: str, runs: int) -> dict[str, list[float]]:
    from mar.store import EventStore
    from projections.handoff import build_packet, render
    from projections.reconcile import load_patient, reconcile

    out: dict[str, list[float]] = {"reconcile (library)": [], "handoff html (library)": []}
    with EventStore(db, read_only=True) as store:
        for _ in range(runs):
            t0 = time.perf_counter()
            record = load_patient(store, PATIENT)
            reconcile(record, "discharge", record.time(at)).to_json()
            out["reconcile (library)"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            record = load_patient(store, PATIENT)
            render(build_packet(record, record.time(at)), "html")
            out["handoff html (library)"].append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    mar = shutil.which("mar")
    if mar is None:
        raise SystemExit("the mar command is not installed (pip install -e .)")
    pod49, pod72 = discharge_times()
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "ref.db")
        env = dict(os.environ, MAR_USER="bench")
        for name in ("MAR_DB", "MAR_READ_ONLY", "MAR_PROJECTIONS"):
            env.pop(name, None)
        subprocess.run([mar, "--db", db, "import", str(FIXTURE)], env=env, check=True, stdout=subprocess.DEVNULL)
        commands = {
            "mar --help (process start floor)": ([mar, "--help"], (0,)),
            "import cli.main, mar.store (floor of every command that reads the store)": (
                [sys.executable, "-c", "import cli.main, mar.store"], (0,)),
            "mar reconcile --transition discharge --at POD49 --json": (
                [mar, "--db", db, "reconcile", PATIENT, "--transition", "discharge", "--at", pod49, "--json"], (3,)),
            "mar reconcile (latest transition, text)": ([mar, "--db", db, "reconcile", PATIENT], (0,)),
            "mar handoff --at POD49 --format html": (
                [mar, "--db", db, "handoff", PATIENT, "--at", pod49, "--format", "html"], (0,)),
            "mar handoff --at POD72 --format text": (
                [mar, "--db", db, "handoff", PATIENT, "--at", pod72], (0,)),
            "mar handoff --at POD72 --format fhir": (
                [mar, "--db", db, "handoff", PATIENT, "--at", pod72, "--format", "fhir"], (0,)),
        }
        for cmd, ok in commands.values():  # warm the file cache and byte code once
            timed(cmd, env, ok)
        results = {}
        for name, (cmd, ok) in commands.items():
            runs = [timed(cmd, env, ok) for _ in range(args.runs)]
            results[name] = runs
        library = in_process(db, pod49, args.runs)
    load = os.getloadavg()
    print(f"# {args.runs} runs each; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"Python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    print()
    print("| command | wall min | wall median | CPU min | CPU median |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"| `{name}` | {min(walls):.3f} s | {statistics.median(walls):.3f} s | {min(cpus):.3f} s | "
              f"{statistics.median(cpus):.3f} s |")
    for name, walls in library.items():
        print(f"| {name} | {min(walls):.3f} s | {statistics.median(walls):.3f} s | | |")


if __name__ == "__main__":
    main()
