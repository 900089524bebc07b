"""Every patient's alerts at once, for a rebuild from a plain SQLite store.

A rebuild computes the alerts of every patient: Python work (about 1 s per 100,000 events)
that needs nothing from the other read models, only the store. So a rebuild starts it at
once in another process (`start`), reading the store file on its own connection while the
other projections are rebuilt on the first core, and collects the rows at the end
(`Job.rows`). Small stores are done in the rebuilding process (starting a Python process
costs more than they do). The rows are those of `projection.alert_rows`, patient by patient,
as a catch-up computes them.

`python -m projections.alerts.bulk STORE TABLE UPTO OUT` is the other process: it writes
{"fingerprint", "alerts", "states"} as JSON to OUT.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import weakref
from itertools import groupby
from operator import itemgetter
from pathlib import Path

import orjson

from mar.errors import MarError

from .projection import alert_rows, fingerprint, no_collection

# Below this many events a rebuild computes the alerts itself.
IN_PROCESS_UPTO = 20_000


class BulkAlertsError(MarError):
    pass


def every_patient(path: str, table: str, upto: int) -> tuple[list[tuple], list[tuple]]:
    """The alert rows and state rows of every patient of a plain SQLite store, up to a position.
    A stream holds one patient's events (mar.store.stream_id), in store order."""
    want = fingerprint()
    alerts: list[tuple] = []
    states: list[tuple] = []
    conn = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True)
    try:
        with no_collection():
            rows = conn.execute(f"SELECT originator_id, state FROM {table} WHERE rowid <= ? "
                                "ORDER BY originator_id, originator_version", (upto,))
            loads = orjson.loads
            for _, stream in groupby(rows, key=itemgetter(0)):
                events = [loads(state) for _, state in stream]
                patient_id = events[0]["patient_id"]
                alerts += alert_rows(patient_id, events)
                states.append((patient_id, want))
    finally:
        conn.close()
    return alerts, states


class Job:
    """The alerts of a rebuild being computed, in this process or another."""

    def __init__(self, path: str, table: str, upto: int, in_process_upto: int | None = None):
        self.args = (path, table, upto)
        self.process: subprocess.Popen | None = None
        self.out: str | None = None
        self._cleanup: weakref.finalize | None = None
        if upto >= (IN_PROCESS_UPTO if in_process_upto is None else in_process_upto):
            self._start()

    def _start(self) -> None:
        fd, self.out = tempfile.mkstemp(prefix="mar-alerts-", suffix=".json")
        os.close(fd)
        root = str(Path(__file__).resolve().parents[2])  # this copy of mar, whatever sys.path the child gets
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "projections.alerts.bulk", *map(str, self.args), self.out],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        except OSError:
            self._forget()  # no other process to be had: done here, in rows()
            return
        # a rebuild that fails before collecting the rows leaves neither process nor file behind
        self._cleanup = weakref.finalize(self, _stop, self.process, self.out)

    def rows(self) -> tuple[list[tuple], list[tuple]]:
        """(alert rows, state rows), waiting for the other process if there is one."""
        if self.process is None:
            return every_patient(*self.args)
        try:
            _, err = self.process.communicate()
            if self.process.returncode != 0:
                raise BulkAlertsError(f"computing the alerts in another process failed (exit "
                                      f"{self.process.returncode}): {err.decode(errors='replace').strip()[-800:]}")
            done = orjson.loads(Path(self.out).read_bytes())
        finally:
            self._forget()
        if done["fingerprint"] != fingerprint():
            raise BulkAlertsError(f"the other process computed the alerts under {done['fingerprint']}, "
                                  f"not {fingerprint()}")
        return [tuple(r) for r in done["alerts"]], [tuple(r) for r in done["states"]]

    def cancel(self) -> None:
        self._forget()

    def _forget(self) -> None:
        if self._cleanup is not None:
            self._cleanup()
        elif self.out is not None:
            Path(self.out).unlink(missing_ok=True)
        self.process, self.out, self._cleanup = None, None, None


def _stop(process: subprocess.Popen, out: str) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    Path(out).unlink(missing_ok=True)


def main(argv: list[str]) -> None:
    path, table, upto, out = argv
    if hasattr(os, "nice"):
        os.nice(10)
    alerts, states = every_patient(path, table, int(upto))
    Path(out).write_bytes(orjson.dumps({"fingerprint": fingerprint(), "alerts": alerts, "states": states}))


if __name__ == "__main__":
    main(sys.argv[1:])
