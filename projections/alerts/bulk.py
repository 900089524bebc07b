"""Every patient's alerts at once, for a rebuild from a plain SQLite store.

A rebuild computes the alerts of every patient: Python work (about 1 s of CPU per 100,000
events) that needs nothing from the other read models, only the store. So a rebuild starts
it at once in other processes (`Job`, from the projection's `bulk_begin`), each reading
the store file on its own connection and taking every n-th patient, while the other
projections are rebuilt; `bulk_all` collects the rows at the end. Small stores are done in
the rebuilding process (starting Python costs more than they do). The rows are those of
`projection.alert_rows`, patient by patient, as a catch-up computes them.

`python -m projections.alerts.bulk STORE TABLE UPTO PART PARTS OUT` is one such process: it
writes {"fingerprint", "alerts", "states"} as JSON to OUT.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

import orjson

from mar.errors import MarError

from .projection import alert_rows, fingerprint, no_collection

# Below this many events a rebuild computes the alerts itself.
IN_PROCESS_UPTO = 20_000
# Processes computing a large rebuild's alerts, each taking every n-th patient: one per core
# the rest of the rebuild leaves (it keeps about one busy), at least one.
PROCESSES = max(1, min(4, (os.cpu_count() or 2) - 1))


class BulkAlertsError(MarError):
    pass


def every_patient(path: str, table: str, upto: int, part: int = 0, parts: int = 1) -> tuple[list, list]:
    """The alert rows and state rows of every `parts`-th patient (from the `part`-th) of a plain
    SQLite store, up to a position. A stream holds one patient's events (mar.store.stream_id)."""
    want = fingerprint()
    alerts: list[tuple] = []
    states: list[tuple] = []
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        with no_collection():
            streams = [r[0] for r in conn.execute(f"SELECT DISTINCT originator_id FROM {table}")]
            sql = f"SELECT state FROM {table} WHERE originator_id = ? AND rowid <= ? ORDER BY originator_version"
            loads = orjson.loads
            for stream in streams[part::parts]:
                events = [loads(r[0]) for r in conn.execute(sql, (stream, upto))]
                if events:
                    patient_id = events[0]["patient_id"]
                    alerts += alert_rows(patient_id, events)
                    states.append((patient_id, want))
    finally:
        conn.close()
    return alerts, states


class Job:
    """The alerts of a rebuild being computed, in this process or in others."""

    def __init__(self, path: str, table: str, upto: int, in_process_upto: int | None = None):
        self.args = (path, table, upto)
        self.workers: list[tuple[subprocess.Popen, str]] = []  # (process, its output file)
        self._cleanup: weakref.finalize | None = None
        if upto >= (IN_PROCESS_UPTO if in_process_upto is None else in_process_upto):
            self._start()

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # this copy of mar, whatever sys.path the child gets
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        try:
            for part in range(PROCESSES):
                fd, out = tempfile.mkstemp(prefix="mar-alerts-", suffix=".json")
                os.close(fd)
                self.workers.append((None, out))  # type: ignore[arg-type]  (its file, should Popen fail)
                process = subprocess.Popen(
                    [sys.executable, "-m", "projections.alerts.bulk", *map(str, self.args), str(part),
                     str(PROCESSES), out],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                self.workers[-1] = (process, out)
        except OSError:
            self._forget()  # no other process to be had: done here, in rows()
            return
        # a rebuild that fails before collecting the rows leaves neither processes nor files behind
        self._cleanup = weakref.finalize(self, _stop, list(self.workers))

    def rows(self) -> tuple[list[tuple], list[tuple]]:
        """(alert rows, state rows), waiting for the other processes if there are some."""
        if not self.workers:
            return every_patient(*self.args)
        alerts: list[tuple] = []
        states: list[tuple] = []
        try:
            for process, out in self.workers:
                _, err = process.communicate()
                if process.returncode != 0:
                    raise BulkAlertsError(f"computing the alerts in another process failed (exit "
                                          f"{process.returncode}): {err.decode(errors='replace').strip()[-800:]}")
                done = orjson.loads(Path(out).read_bytes())
                if done["fingerprint"] != fingerprint():
                    raise BulkAlertsError(f"another process computed the alerts under {done['fingerprint']}, "
                                          f"not {fingerprint()}")
                alerts += map(tuple, done["alerts"])
                states += map(tuple, done["states"])
        finally:
            self._forget()
        return alerts, states

    def cancel(self) -> None:
        self._forget()

    def _forget(self) -> None:
        if self._cleanup is not None:
            self._cleanup()
        else:
            _stop(self.workers)
        self.workers, self._cleanup = [], None


def _stop(workers: list[tuple[subprocess.Popen | None, str]]) -> None:
    for process, out in workers:
        if process is not None:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()
        Path(out).unlink(missing_ok=True)


def main(argv: list[str]) -> None:
    path, table, upto, part, parts, out = argv
    alerts, states = every_patient(path, table, int(upto), int(part), int(parts))
    Path(out).write_bytes(orjson.dumps({"fingerprint": fingerprint(), "alerts": alerts, "states": states}))


if __name__ == "__main__":
    main(sys.argv[1:])
