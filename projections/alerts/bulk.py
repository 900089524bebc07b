"""Every patient's alerts at once, for a rebuild from a plain SQLite store.

A rebuild computes the alerts of every patient: Python work (about 1 s of CPU per 100,000
events) that needs nothing from the other read models, only the store. So a rebuild starts
it at once in another process (`Job`, from the projection's `bulk_begin`), which reads the
store file on its own connection and goes through the patients in order while the other
projections are rebuilt. When they are done, the rebuilding process (`Job.rows`, from
`bulk_all`) takes the patients from the other end until the two meet, then stops the other
process: on two cores the tail of the work is shared. Small stores are done in the
rebuilding process alone (starting Python costs more than they do). Whoever computes a
patient, the rows are those of `projection.alert_rows`, as a catch-up computes them.

`python -m projections.alerts.bulk STORE TABLE UPTO OUT` is the other process: it writes to
OUT a first JSON line {"fingerprint": ...}, then a line [stream, alert rows, state row] per
patient, each flushed as it is done.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import weakref
from pathlib import Path

import orjson

from mar.collector import collector_paused
from mar.errors import MarError

from ..scratch import scratch_file
from .projection import alert_rows, fingerprint

# Below this many events a rebuild computes the alerts itself.
IN_PROCESS_UPTO = 20_000


class BulkAlertsError(MarError):
    pass


class Store:
    """The streams (one per patient, mar.store.stream_id) of a plain SQLite store, read-only."""

    def __init__(self, path: str, table: str, upto: int):
        self.conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        self.table, self.upto = table, upto
        self.fingerprint = fingerprint()
        # in the order of the primary key: the same list for both processes (streams begun
        # after `upto` come out empty)
        self.streams = [r[0] for r in self.conn.execute(
            f"SELECT DISTINCT originator_id FROM {table} ORDER BY originator_id")]

    def patient(self, stream: str) -> tuple[list[tuple], tuple] | None:
        """(alert rows, state row) of one stream's patient; None if it has no event up to `upto`."""
        sql = f"SELECT state FROM {self.table} WHERE originator_id = ? AND rowid <= ? ORDER BY originator_version"
        loads = orjson.loads
        events = [loads(r[0]) for r in self.conn.execute(sql, (stream, self.upto))]
        if not events:
            return None
        patient_id = events[0]["patient_id"]
        return alert_rows(patient_id, events), (patient_id, self.fingerprint)

    def close(self) -> None:
        self.conn.close()


def every_patient(path: str, table: str, upto: int) -> tuple[list, list]:
    """The alert rows and state rows of every patient of a plain SQLite store, up to a position."""
    store = Store(path, table, upto)
    try:
        with collector_paused():
            done = [store.patient(s) for s in store.streams]
    finally:
        store.close()
    return _joined(x for x in done if x is not None)


def _joined(done) -> tuple[list, list]:
    alerts: list[tuple] = []
    states: list[tuple] = []
    for rows, state in done:
        alerts += rows
        states.append(state)
    return alerts, states


class Job:
    """The alerts of a rebuild being computed: by another process, then by both."""

    def __init__(self, path: str, table: str, upto: int, in_process_upto: int | None = None):
        self.args = (path, table, upto)
        self.process: subprocess.Popen | None = None
        self.out: str | None = None
        self._cleanup: weakref.finalize | None = None
        self.shared: tuple[int, int] | None = None  # streams done by the other process, by this one
        if upto >= (IN_PROCESS_UPTO if in_process_upto is None else in_process_upto) and sys.executable:
            self._start()

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # this copy of mar, whatever sys.path the child gets
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.out = scratch_file("alerts", ".jsonl")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "projections.alerts.bulk", *map(str, self.args), self.out],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        except OSError:
            self._forget()  # no other process to be had: all done here, in rows()
            return
        # a rebuild that fails before collecting the rows leaves neither process nor file behind
        self._cleanup = weakref.finalize(self, _stop, self.process, self.out)

    def rows(self) -> tuple[list[tuple], list[tuple]]:
        """(alert rows, state rows): this process takes the patients from the last one down
        until it meets the other process, which it then stops."""
        if self.process is None:
            return every_patient(*self.args)
        store = progress = None
        mine: dict[str, tuple | None] = {}
        try:
            store, progress = Store(*self.args), Progress(self.out)
            with collector_paused():
                for stream in reversed(store.streams):
                    progress.read()
                    if (progress.last is not None and stream <= progress.last) or self.process.poll() is not None:
                        break  # the other process did this one and all before it (or it has stopped)
                    mine[stream] = store.patient(stream)
            stopped = self.process.poll() is None
            if stopped:
                self.process.kill()
            _, err = self.process.communicate()
            progress.read()
            if not stopped and self.process.returncode != 0:
                raise BulkAlertsError(f"computing the alerts in another process failed (exit "
                                      f"{self.process.returncode}): {err.decode(errors='replace').strip()[-800:]}")
            if progress.fingerprint not in (None, fingerprint()):
                raise BulkAlertsError(f"another process computed the alerts under {progress.fingerprint}, "
                                      f"not {fingerprint()}")
            with collector_paused():  # whatever neither did (nothing, unless the other stopped short)
                mine.update((s, store.patient(s)) for s in store.streams if s not in progress.done and s not in mine)
        finally:
            for opened in (progress, store):
                if opened is not None:
                    opened.close()
            self._forget()
        done = {**progress.done, **mine}
        self.shared = (len(done) - len(mine), len(mine))
        return _joined(done[s] for s in store.streams if done[s] is not None)

    def cancel(self) -> None:
        self._forget()

    def _forget(self) -> None:
        if self._cleanup is not None:
            self._cleanup()
        elif self.out is not None:
            Path(self.out).unlink(missing_ok=True)
        self.process, self.out, self._cleanup = None, None, None


class Progress:
    """What the other process has written so far: its fingerprint and the patients it has done
    (complete lines only: it may be stopped in the middle of one)."""

    def __init__(self, path: str):
        self.file = open(path, "rb")  # noqa: SIM115 (closed by close(), after the last read)
        self.rest = b""
        self.fingerprint: str | None = None
        self.done: dict[str, tuple | None] = {}
        self.last: str | None = None

    def read(self) -> None:
        chunk = self.file.read()
        if not chunk:
            return
        *lines, self.rest = (self.rest + chunk).split(b"\n")
        for line in lines:
            item = orjson.loads(line)
            if isinstance(item, dict):
                self.fingerprint = item["fingerprint"]
            else:
                stream, rows, state = item
                self.done[stream] = None if state is None else ([tuple(r) for r in rows], tuple(state))
                self.last = stream

    def close(self) -> None:
        self.file.close()


def _stop(process: subprocess.Popen, out: str) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stderr is not None:
        process.stderr.close()
    Path(out).unlink(missing_ok=True)


def main(argv: list[str]) -> None:
    path, table, upto, out = argv
    store = Store(path, table, int(upto))
    with open(out, "wb") as f, collector_paused():
        f.write(orjson.dumps({"fingerprint": fingerprint()}) + b"\n")
        f.flush()
        for stream in store.streams:
            done = store.patient(stream)
            f.write(orjson.dumps([stream, *(done or (None, None))]) + b"\n")
            f.flush()
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
