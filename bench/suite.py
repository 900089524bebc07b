"""The benchmark suite of issue 6: every cost of mar beside the raw limit, per store size and backend.

For each store size (events of the synthetic hospital, bench/generate.py) and backend:
  import      mar.importing.import_file of the file    | raw: plain batched INSERT of the same rows
  rebuild     every projection from nothing (Runner)    | raw: plain SELECT + orjson decode of all rows
  catch-up    projecting 100 new events                 | raw: SELECT + decode of those 100 rows
  regimen, totals, reconcile for the busiest patient, in process and end to end (`mar ...`)
                                                        | raw: SELECT + decode of that patient's rows
  verify      the chain walk (mar.audit.verify), and `mar verify` end to end
                                                        | raw: SELECT + decode of all rows
Ratio = raw time / mar time for the same rows (1 = mar at the limit; the issue asks >= 0.1 for
the PostgreSQL import). The measuring functions are those of bench_write, bench_projections,
bench_postgres, bench_audit and bench_transitions; this script only runs them per size and
backend and writes bench/out/suite.md and bench/out/suite.png.

Usage:  python bench/suite.py [--sizes 10k,100k,1m] [--backends sqlite,postgres] [--pg-url URL] [--runs 3]
Without --pg-url a throwaway PostgreSQL cluster is started under a temporary folder on
127.0.0.1 (as .ci/run does: fsync off) and stopped at the end. With --pg-url the role must be
allowed to create databases (each size uses a scratch database, dropped afterwards).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import bench_audit  # noqa: E402
import bench_projections  # noqa: E402
import bench_transitions  # noqa: E402
import bench_write  # noqa: E402
import generate  # noqa: E402
from common import OUT, hospital_file  # noqa: E402

from mar.recording import Recorder  # noqa: E402
from mar.store import EventStore, stream_id  # noqa: E402
from projections.queries import StoreRef, regimen_at, totals_for  # noqa: E402
from projections.reconcile import reconcile_patient  # noqa: E402
from projections.runner import Runner  # noqa: E402

USER = "bench"
NEW = bench_projections.NEW  # events per catch-up
THROUGHPUT = ("import", "rebuild", "verify")  # cost per event; the rest are latencies of one call


# --- PostgreSQL ----------------------------------------------------------------------------------


def _pg_bin() -> Path:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True):
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    raise SystemExit("PostgreSQL is not installed (apt-get install postgresql), or give --pg-url")


@contextmanager
def throwaway_cluster():
    """A PostgreSQL cluster under a temporary folder on 127.0.0.1, stopped and removed at the end."""
    pgbin, root = _pg_bin(), os.geteuid() == 0
    work = Path(tempfile.mkdtemp(prefix="mar-suite-pg-"))
    data = work / "pgdata"
    data.mkdir()
    as_pg = ["runuser", "-u", "postgres", "--"] if root else []
    if root:
        shutil.chown(work, "postgres")
        shutil.chown(data, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = [*as_pg, str(pgbin / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([*as_pg, str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True)
        # Durability off as in .ci/run: the data is thrown away (say so beside the figures).
        subprocess.run([*ctl, "-l", str(work / "postgres.log"), "-w", "-t", "60", "-o",
                        f"-h 127.0.0.1 -p {port} -k {work} -c fsync=off -c synchronous_commit=off "
                        "-c full_page_writes=off -c max_connections=200", "start"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*ctl, "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


# --- one backend ---------------------------------------------------------------------------------


class SQLiteBackend:
    name = "sqlite"

    def __init__(self, work: Path):
        self.work = work

    def imported(self, events: int) -> tuple[str, dict]:
        """Import the hospital file; (store URL, figures beside a raw INSERT of the stored rows)."""
        sizedir = self.work / f"sqlite-{events}"
        sizedir.mkdir()
        seconds, _, added, db = bench_write.import_once(hospital_file(events), sizedir)
        raw_seconds, _ = bench_write.raw_insert(bench_write.stored_rows(db), sizedir)
        return str(db), {"events": added, "seconds": seconds, "raw_seconds": raw_seconds}

    def read(self, url: str, where: str = "", params: tuple = ()) -> float:
        return bench_projections.plain_read(Path(url), where, params)

    def tail(self, url: str, n: int) -> float:
        return self.read(url, "WHERE rowid > (SELECT MAX(rowid) FROM stored_events) - ?", (n,))

    def patient(self, url: str, patient_id: str) -> float:
        return self.read(url, "WHERE originator_id = ?", (stream_id(patient_id).hex,))

    def close(self) -> None:
        pass


class PostgresBackend:
    name = "postgres"

    def __init__(self, admin_url: str):
        import bench_postgres

        self.bp = bench_postgres
        self.server = bench_postgres.Server(admin_url)

    def imported(self, events: int) -> tuple[str, dict]:
        r = self.bp.bench_import(self.server, events, label=f"suite{events}")
        return r["url"], {"events": r["events"], "seconds": r["seconds"], "raw_seconds": r["raw_seconds"]}

    def read(self, url: str, where: str = "", params: tuple = ()) -> float:
        return self.bp.plain_read(url, where, params)

    def tail(self, url: str, n: int) -> float:
        return self.read(url, "WHERE notification_id > (SELECT MAX(notification_id) FROM marstore_events) - %s",
                         (n,))

    def patient(self, url: str, patient_id: str) -> float:
        return self.read(url, "WHERE originator_id = %s", (stream_id(patient_id),))

    def close(self) -> None:
        self.server.close()


# --- the measures ----------------------------------------------------------------------------------


def median_of(runs: int, fn) -> float:
    return statistics.median(fn() for _ in range(runs))


def measure(backend, events: int, runs: int, work: Path) -> list[dict]:
    """Every measure at one store size on one backend; each a dict with mar's and the raw seconds."""
    rows: list[dict] = []

    def add(name: str, count: int, seconds: float, raw: float, e2e: float | None = None) -> None:
        rows.append({"measure": name, "count": count, "seconds": seconds, "raw_seconds": raw, "e2e_seconds": e2e})
        extra = f", end to end {e2e * 1000:.1f} ms" if e2e is not None else ""
        print(f"  {backend.name} {events:,}: {name} of {count:,} events {seconds * 1000:.1f} ms, raw "
              f"{raw * 1000:.1f} ms, ratio {raw / seconds:.3f}{extra}", file=sys.stderr)

    url, imp = backend.imported(events)
    add("import", imp["events"], imp["seconds"], imp["raw_seconds"])
    os.environ["MAR_PROJECTIONS"] = str(work / f"{backend.name}-{events}.projections.db")
    full_read = median_of(runs, lambda: backend.read(url))
    with EventStore(url) as store:
        size = store.max_position()
        rebuild = median_of(runs, lambda: bench_projections.rebuild_once(store, work)[0])
        add("rebuild", size, rebuild, full_read)
        late = [orjson.dumps(e) for e in generate.hospital(events=NEW * runs, seed=7, prefix="late")]
        with Runner(store) as runner:
            runner.catch_up()  # untimed: the read models start level with the store
            recorder = Recorder(store, USER)
            catch = [bench_projections.catch_up_once(runner, recorder, late[i:i + NEW])[0]
                     for i in range(0, len(late), NEW)]
            add(f"catch-up {NEW}", NEW, statistics.median(catch), median_of(runs, lambda: backend.tail(url, NEW)))
            patient, count, _, at = bench_projections.busiest_patient(runner)
        raw_patient = median_of(runs, lambda: backend.patient(url, patient))
        ref = StoreRef(url)
        queries = {
            "regimen": (lambda: regimen_at(ref, patient, at), ["regimen", patient, "--at", at, "--json"], (0,)),
            "totals": (lambda: totals_for(ref, patient), ["totals", patient, "--json"], (0,)),
            "reconcile": (lambda: reconcile_patient(store, patient).to_json(), ["reconcile", patient, "--json"],
                          (0, 3)),
        }
        mar = shutil.which("mar") or sys.exit("the mar command is not installed (pip install -e .)")
        env = dict(os.environ, MAR_USER=USER)
        for name, (call, args, ok) in queries.items():
            call()  # warm: imports and page cache
            cmd = [mar, "--db", url, *args]
            bench_transitions.timed(cmd, env, ok)
            add(f"{name} {patient}", count, median_of(runs, lambda: _timed(call)), raw_patient,
                median_of(runs, lambda: bench_transitions.timed(cmd, env, ok)[0]))
    v = bench_audit.bench_verify(url, False, runs)
    add("verify", v["events"], v["events"] / v["rate"], median_of(runs, lambda: backend.read(url)), v["cli_s"])
    for r in rows:
        r.update(backend=backend.name, size=events, load=os.getloadavg()[0])
    return rows


def _timed(call) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


# --- report ------------------------------------------------------------------------------------------


def kind(measure: str) -> str:
    return measure.split()[0]


def cost(r: dict, key: str = "seconds") -> str:
    """µs per event for the throughput measures, ms for one call."""
    if r[key] is None:
        return ""
    if kind(r["measure"]) in THROUGHPUT:
        return f"{1e6 * r[key] / r['count']:.1f} µs/ev ({r['count'] / r[key]:,.0f}/s)"
    return f"{1000 * r[key]:.1f} ms"


def table(rows: list[dict]) -> str:
    lines = ["| store events | backend | measure | events read | mar | raw limit | ratio raw/mar | mar end to end |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['size']:,} | {r['backend']} | {r['measure']} | {r['count']:,} | {cost(r)} | "
                     f"{cost(r, 'raw_seconds')} | {r['raw_seconds'] / r['seconds']:.3f} | {cost(r, 'e2e_seconds')} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6.5))
    style = {"sqlite": "-", "postgres": "--"}
    # series -> {store size: value}; one colour per measure, the line style tells the backend
    series: dict[tuple, dict[int, float]] = {}
    for r in rows:
        k, b = kind(r["measure"]), r["backend"]
        if k in THROUGHPUT:
            per = 1e6 / r["count"]
            series.setdefault((left, k, b), {})[r["size"]] = r["seconds"] * per
            raw = "raw INSERT" if k == "import" else "raw SELECT+decode"  # rebuild's and verify's: one line
            series.setdefault((left, raw, b), {}).setdefault(r["size"], r["raw_seconds"] * per)
        else:
            series.setdefault((right, k, b), {})[r["size"]] = r["seconds"] * 1000
            if r["e2e_seconds"] is not None:
                series.setdefault((right, f"{k} end to end", b), {})[r["size"]] = r["e2e_seconds"] * 1000
    # one colour per measure within a panel; a query end to end has its colour, square markers
    base = lambda name: name.replace(" end to end", "")  # noqa: E731
    names = {ax: list(dict.fromkeys(base(n) for a, n, _ in series if a is ax)) for ax in (left, right)}
    colours = plt.get_cmap("tab10")
    for (ax, name, b), points in series.items():
        xs = sorted(points)
        e2e = "end to end" in name
        ax.plot(xs, [points[x] for x in xs], style[b], marker="s" if e2e else "o",
                color=colours(names[ax].index(base(name)) % 10), label=f"{name} ({b})", linewidth=1.4,
                alpha=0.6 if "raw" in name or e2e else 1.0)
    for ax, title, unit in ((left, "cost per event (µs), lower is better", "µs per event"),
                            (right, "latency of one call (ms)", "ms")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("store size (events)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    fig.suptitle("mar benchmark suite: solid = SQLite, dashed = PostgreSQL")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def size_arg(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1:], 1)
        out.append(int(float(part[:-1] if scale > 1 else part) * scale))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--sizes", type=size_arg, default=size_arg("10k,100k,1m"), help="store sizes (default 10k,100k,1m)")
    ap.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both (default both)")
    ap.add_argument("--pg-url", help="admin URL of an existing server (default: a throwaway cluster)")
    ap.add_argument("--runs", type=int, default=3, help="runs per measure, median reported (default 3)")
    args = ap.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",")]
    if set(backends) - {"sqlite", "postgres"}:
        ap.error(f"--backends {args.backends!r}: use sqlite, postgres or both")
    OUT.mkdir(exist_ok=True)
    rows: list[dict] = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mar-suite-", dir=os.environ.get("MAR_BENCH_TMP")) as tmp:
        work = Path(tmp)
        with (throwaway_cluster() if "postgres" in backends and not args.pg_url else _given(args.pg_url)) as pg_url:
            opened = [SQLiteBackend(work) if b == "sqlite" else PostgresBackend(pg_url) for b in backends]
            try:
                for size in args.sizes:
                    for backend in opened:
                        rows.extend(measure(backend, size, args.runs, work))
            finally:
                for backend in opened:
                    backend.close()
    after = os.getloadavg()
    head = (f"`python bench/suite.py --sizes {','.join(str(s) for s in args.sizes)} --backends {','.join(backends)}`: "
            f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at the start and {after[0]:.2f} at the end; "
            f"median of {args.runs} runs (import: one run); PostgreSQL "
            f"{'throwaway cluster, fsync off' if not args.pg_url else 'at the given URL'}.\n\n")
    (OUT / "suite.md").write_text(head + table(rows))
    chart(rows, OUT / "suite.png")
    print(head + table(rows))
    print(f"wrote {OUT / 'suite.md'} and {OUT / 'suite.png'}")
    return 0


@contextmanager
def _given(url: str | None):
    yield url


if __name__ == "__main__":
    sys.exit(main())
