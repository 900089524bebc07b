"""The projection runner: read models in their own SQLite database, kept up to date from the store.

The database (default: next to the store, `X.db` -> `X.projections.db`, or MAR_PROJECTIONS)
is created with sqlite-utils and readable by sqlite-utils and datasette. Each projection
owns its tables and one row of `_projections` (name, position, version). A batch of events
is applied to a projection and its position moved in one transaction, so a crash never
applies an event twice or skips one. Writers serialise on `BEGIN IMMEDIATE` and re-read the
positions inside the transaction, so two read commands catching up at once do the work once.

Adding a projection: subclass `Projection` (name, version, `create`, `apply`) and append its
class to `EXTRA_PROJECTIONS` (or pass `projections=` to Runner). Projections run in list
order inside the same transaction; a later one may use the `Batch.changes` an earlier one
left (the medication projection records the patients and local days it recomputed). Bump
`version` when a projection's tables or meaning change: it is rebuilt on next open.

A rebuild (and the first catch-up of an empty database) resets every projection's tables,
calls `bulk_begin(load)` on each, then `bulk_all(db, load)` on each, then `bulk_patient` for
those whose bulk_all returned False, then `indexes`, all in one transaction with the garbage
collector off. Interface additions of the two-core rebuild, all backward compatible:
`Projection.bulk_begin` (default: nothing), `BulkLoad.in_background` returns a `Background`
job with its own `wait()`, `BulkLoad.connect()` and `BulkLoad.scratch` (a scratch database
for work on other connections, attached as `mar_scratch`), `BulkLoad.writing` and
`BulkLoad.db_free()` (background jobs on the read-model connection).
"""
from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

from typing import TYPE_CHECKING

import orjson

from mar.collector import collector_paused
from mar.errors import MarError

from .scratch import scratch_file
from .timeline import instant

if TYPE_CHECKING:  # heavy imports stay off the read path: a read command that is up to date needs neither
    import sqlite_utils

    from mar.store import EventStore

loads = orjson.loads

BATCH = 50_000
PAGE_SIZE = 16_384


class ProjectionError(MarError):
    pass


@dataclass
class Batch:
    """Events (position, stored dict) for one projection, and what earlier projections changed."""

    events: list[tuple[int, dict]]
    first: int  # first position of the batch
    upto: int  # last position of the batch: reads of derived tables must not look past it
    changes: dict = field(default_factory=dict)


class Stored(NamedTuple):
    """One stored event as a rebuild hands it over: position, dict, its JSON text, clinical time."""

    position: int
    data: dict
    text: str | None  # the JSON as stored (None when it had to be decrypted or upcast)
    t: int  # effective_at in epoch microseconds


class Sink:
    """Rows waiting to be inserted, per table, written with executemany in large groups."""

    def __init__(self, db: sqlite_utils.Database, limit: int = 50_000):
        self.db = db
        self.limit = limit
        self.rows: dict[str, list[tuple]] = {}
        self.count = 0

    def add(self, table: str, rows: list[tuple]) -> None:
        if rows:
            self.rows.setdefault(table, []).extend(rows)
            self.count += len(rows)

    def maybe_flush(self) -> None:
        if self.count >= self.limit:
            self.flush()

    def flush(self) -> None:
        for table, rows in self.rows.items():
            self.db.conn.executemany(f"INSERT INTO [{table}] VALUES ({','.join('?' * len(rows[0]))})", rows)
        self.rows.clear()
        self.count = 0


class BulkLoad:
    """What a rebuild offers each projection first: the store, its SQLite file attached to the
    read-model connection (None if it is not a plain file), work left running in the
    background (SQLite releases the GIL inside a statement, so a long INSERT ... SELECT can
    run while Python folds), and a scratch database for work on other connections.

    The scratch database (when the store is a file) is a temporary SQLite file, attached to
    the read-model connection as `mar_scratch` for the whole rebuild and deleted after it.
    `connect()` opens another connection to it (the store attached as `mar_store`, read-only),
    for a background thread to fill tables there while the read-model connection does other
    work; the read-model connection then reads them (`mar_scratch.NAME`) once that thread is
    done (`wait()`). Prefix scratch tables with the projection's name.
    """

    def __init__(self, store: EventStore, upto: int, attached: str | None, scratch: str | None = None):
        self.store = store
        self.upto = upto
        self.attached = attached
        self.scratch = scratch  # path of the scratch database, None without a store file
        self.copied: set[str] = set()  # tables being filled in the background
        self.writing: list[Background] = []  # background jobs that use the read-model connection
        self._jobs: list[Background] = []
        self._connections: list[sqlite3.Connection] = []

    def in_background(self, work, *args) -> Background:
        """Run work(*args) in a thread; `wait()` (or the returned job's) joins it and re-raises
        its error in the caller's thread."""
        job = Background(work, args)
        self._jobs.append(job)
        return job

    def db_free(self) -> bool:
        """No background job is using the read-model connection (see `writing`) any more."""
        return not any(job.thread.is_alive() for job in self.writing)

    def wait(self) -> None:
        for job in self._jobs:
            job.thread.join()
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.wait()

    def connect(self) -> sqlite3.Connection:
        """A new connection to the scratch database (no journal: it is thrown away), with the
        store attached read-only as `mar_store`. Closed by the rebuild at its end."""
        from .events_table import store_file

        if self.scratch is None:
            raise ProjectionError("this rebuild has no scratch database (the store is not a SQLite file)")
        conn = sqlite3.connect(self.scratch, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("ATTACH DATABASE ? AS mar_store", (Path(store_file(self.store)).as_uri() + "?mode=ro",))
        self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Join what is still running (errors dropped: the rebuild is failing already, or was
        told by wait()) and close the scratch connections."""
        for job in self._jobs:
            job.thread.join()
        self._jobs.clear()
        for conn in self._connections:
            conn.close()
        self._connections.clear()


class Background:
    """One piece of work running in a thread (BulkLoad.in_background)."""

    def __init__(self, work, args: tuple):
        self.error: BaseException | None = None

        def run():
            try:
                work(*args)
            except BaseException as exc:  # re-raised by wait(), in the caller's thread
                self.error = exc

        self.thread = threading.Thread(target=run, name="mar-bulk", daemon=True)
        self.thread.start()

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error


class Projection:
    name: str = ""
    version: int = 1
    tables: tuple[str, ...] = ()

    def create(self, db: sqlite_utils.Database) -> None:
        """Create the tables (secondary indexes come from `indexes`, after a bulk load)."""
        raise NotImplementedError

    def indexes(self, db: sqlite_utils.Database) -> None:
        """Create secondary indexes if missing."""

    def apply(self, db: sqlite_utils.Database, batch: Batch) -> None:
        raise NotImplementedError

    def bulk_begin(self, load: BulkLoad) -> None:
        """A rebuild calls this on every projection before any bulk_all: work that needs only
        the store may start here (in another process), to be collected by bulk_all."""

    def bulk_all(self, db: sqlite_utils.Database, load: BulkLoad) -> bool:
        """A rebuild may first offer the whole store at once (True: done, skip bulk_patient).
        The database connection may be busy with `load`'s background work: call
        `load.wait()` before using it."""
        return False

    def bulk_patient(self, db: sqlite_utils.Database, patient_id: str, events: list[Stored], sink: Sink) -> None:
        """A rebuild hands over each patient's whole stream in turn (tables start empty)."""
        sink.flush()
        self.apply(db, Batch([(x.position, x.data) for x in events], events[0].position, events[-1].position))

    def drop(self, db: sqlite_utils.Database) -> None:
        for view in getattr(self, "views", ()):
            db.execute(f"DROP VIEW IF EXISTS [{view}]")
        for table in self.tables:
            db.execute(f"DROP TABLE IF EXISTS [{table}]")


def projections_path(store_url: str) -> str:
    """Where the read models live for a store: MAR_PROJECTIONS, else beside the store file."""
    explicit = os.environ.get("MAR_PROJECTIONS")
    if explicit:
        return explicit
    path = store_url[len("sqlite:///"):] if store_url.startswith("sqlite:///") else store_url
    if "://" in path:
        raise ProjectionError(f"the store {store_url} is not a file: set MAR_PROJECTIONS to the read-model database")
    if path == ":memory:" or path.startswith("file::memory:"):
        return ":memory:"
    p = Path(path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return str(p.with_name(f"{stem}.projections.db"))


def default_projections() -> list[Projection]:
    from .alerts.projection import AlertsProjection
    from .events_table import EventsProjection
    from .medication import MedicationProjection

    found: list[Projection] = [EventsProjection(), MedicationProjection(), AlertsProjection()]
    for extra in EXTRA_PROJECTIONS:
        found.append(extra())
    return found


# Other modules register projection classes here (e.g. alerts); they run after the built-in ones.
EXTRA_PROJECTIONS: list[type[Projection]] = []


class Runner:
    """Keeps the read-model database of one store up to date."""

    def __init__(self, store: EventStore, path: str | None = None,
                 projections: Sequence[Projection] | None = None, batch_size: int = BATCH):
        self.store = store
        self.path = path or projections_path(store.url)
        self.projections = list(projections) if projections is not None else default_projections()
        self.batch_size = batch_size
        self.db = self._open()

    # --- the database -----------------------------------------------------------------

    def _open(self) -> sqlite_utils.Database:
        import sqlite_utils

        if self.path != ":memory:":
            p = Path(self.path)
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists():
                os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False, uri=True)
            db = sqlite_utils.Database(conn)
            # a new file only (a no-op on an existing one): 16 KiB pages make a rebuild, which
            # writes every page twice (WAL, then checkpoint), cost a third less than 4 KiB ones
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            if self.path != ":memory:":
                _wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA temp_store=MEMORY")
            db.execute("PRAGMA cache_size=-65536")
        except sqlite3.DatabaseError as exc:
            raise ProjectionError(f"cannot open the read-model database {self.path}: {exc}") from exc
        self._prepare(db)
        return db

    def _prepare(self, db: sqlite_utils.Database) -> None:
        with write_transaction(db):
            if "_projections" not in db.table_names():
                db["_projections"].create({"name": str, "position": int, "version": int, "updated_at": str},
                                          pk="name")
            rows = {r["name"]: r for r in db["_projections"].rows}
            for p in self.projections:
                row = rows.get(p.name)
                if row is None or row["version"] != p.version:
                    self._reset(db, p)

    def _reset(self, db: sqlite_utils.Database, p: Projection, bulk: bool = False) -> None:
        p.drop(db)
        p.create(db)
        if not bulk:
            p.indexes(db)
        db.execute("INSERT OR REPLACE INTO _projections (name, position, version, updated_at) VALUES (?,?,?,?)",
                   (p.name, 0, p.version, _now()))

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def positions(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT name, position FROM _projections").fetchall()}

    # --- catching up --------------------------------------------------------------------

    def catch_up(self, upto: int | None = None) -> int:
        """Apply every stored event not yet projected (up to position `upto`). Returns how many."""
        target = self.store.max_position() if upto is None else upto
        done = 0
        if target > 0 and self._starting():
            # a read model starts from nothing (new, or a new version): rebuilding them all in
            # bulk is much faster than feeding one of them every event through its catch-up
            done = self._bulk_transaction(target, only_if_empty=True)
        while True:
            with write_transaction(self.db):
                positions = self._positions_checked(target)
                low = min(positions.values(), default=target)
                if low >= target:
                    return done
                events = self.store.read_all(low, min(self.batch_size, target - low), stop=target)
                if not events:
                    return done
                self._apply(events, positions)
                done += len(events)

    def _starting(self) -> bool:
        positions = self.positions()
        return any(positions.get(p.name, 0) == 0 for p in self.projections)

    def rebuild(self, upto: int | None = None) -> int:
        """Drop every read model and project the whole store again, in one transaction
        (a crash leaves the old read models as they were)."""
        target = self.store.max_position() if upto is None else upto
        return self._bulk_transaction(target, only_if_empty=False)

    def _bulk_transaction(self, target: int, only_if_empty: bool) -> int:
        """One transaction for a whole rebuild. The store file is attached for SQL copies, and
        a scratch file for work on other connections (BulkLoad); both are attached before the
        transaction, since SQLite cannot detach a database inside one. The transaction starts
        deferred and writes to our database first, so that only our file is locked for
        writing (BEGIN IMMEDIATE would lock the attached store as well)."""
        from .events_table import store_file

        path = store_file(self.store)
        scratch = None
        if path is not None:
            self.db.execute("ATTACH DATABASE ? AS mar_store", (Path(path).as_uri() + "?mode=ro",))
            scratch = scratch_file("rebuild", ".db")
            self.db.execute("ATTACH DATABASE ? AS mar_scratch", (scratch,))
        load = BulkLoad(self.store, target, "mar_store" if path else None, scratch)
        try:
            self.db.execute("BEGIN")
            try:
                self.db.execute("UPDATE _projections SET updated_at = updated_at")  # take our write lock
                if only_if_empty and not self._starting():
                    count = 0  # another reader did it meanwhile
                else:
                    with collector_paused():  # millions of short-lived tuples and dicts, no cycles
                        count = self._bulk(load)
            except BaseException:
                load.close()
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            return count
        finally:
            load.close()
            if path is not None:
                self.db.execute("DETACH DATABASE mar_store")
                self.db.execute("DETACH DATABASE mar_scratch")
                Path(scratch).unlink(missing_ok=True)

    def _bulk(self, load: BulkLoad) -> int:
        """Project every event up to `load.upto` patient by patient into empty tables, then index."""
        target = load.upto
        for p in self.projections:
            self._reset(self.db, p, bulk=True)
        sink = Sink(self.db)
        count = 0
        try:
            for p in self.projections:
                p.bulk_begin(load)
            rest = [p for p in self.projections if not p.bulk_all(self.db, load)]
        finally:
            load.wait()
        for patient_id, events in patient_streams(self.store, target) if rest else ():
            for p in rest:
                p.bulk_patient(self.db, patient_id, events, sink)
            sink.maybe_flush()
            count += len(events)
        sink.flush()
        if not rest:
            count = target  # positions have no gaps in a SQLite store
        for p in self.projections:
            p.indexes(self.db)
            self.db.execute("UPDATE _projections SET position=?, updated_at=? WHERE name=?",
                            (target, _now(), p.name))
        return count

    def _positions_checked(self, target: int) -> dict[str, int]:
        positions = {r[0]: r[1] for r in self.db.execute("SELECT name, position FROM _projections").fetchall()}
        ahead = [name for name, pos in positions.items() if pos > self.store.max_position()]
        if ahead:
            # The store is not the one these read models came from (replaced or restored):
            # they are derived data, so start them again rather than answer from them.
            for p in self.projections:
                self._reset(self.db, p)
            positions = {p.name: 0 for p in self.projections}
        return {p.name: positions[p.name] for p in self.projections}

    def _apply(self, events: list[tuple[int, dict]], positions: dict[str, int]) -> None:
        last = events[-1][0]
        changes: dict = {}
        for p in self.projections:
            mine = [e for e in events if e[0] > positions[p.name]]
            if not mine:
                continue
            p.apply(self.db, Batch(mine, mine[0][0], last, changes))
            self.db.execute("UPDATE _projections SET position=?, updated_at=? WHERE name=?",
                            (last, _now(), p.name))


def patient_streams(store: EventStore, upto: int, page: int = 20_000) -> Iterator[tuple[str, list[Stored]]]:
    """Every patient's events up to position `upto`, one patient at a time, in stream order."""
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    from mar.event_types import VERSIONS as versions
    recorder = store.recorder
    mapper = store.mapper
    plain = not (mapper.cipher or mapper.compressor)
    if not isinstance(recorder, SQLiteApplicationRecorder):
        yield from _grouped(store.iter_all(0), upto)
        return
    table = recorder.events_table_name
    sql = (f"SELECT rowid, originator_id, originator_version, state FROM {table} WHERE rowid <= ? "
           "AND (originator_id, originator_version) > (?, ?) ORDER BY originator_id, originator_version LIMIT ?")
    key: tuple = ("", 0)
    current, events = None, []
    while True:
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(sql, (upto, key[0], key[1], page))
            rows = c.fetchall()
        if not rows:
            break
        for position, oid, version, state in rows:
            if oid != current:
                if events:
                    yield events[0].data["patient_id"], events
                current, events = oid, []
            events.append(_stored(position, state, plain, mapper, versions))
        key = (rows[-1][1], rows[-1][2])
    if events:
        yield events[0].data["patient_id"], events


def _stored(position: int, state: bytes, plain: bool, mapper, versions: dict) -> Stored:
    data = loads(state) if plain else mapper.decode(state)
    if data.get("v", 1) != versions.get(data.get("type"), 1):
        from mar.event_types import upcast

        data = upcast(data)
        return Stored(position, data, None, instant(data["effective_at"]))
    return Stored(position, data, state.decode() if plain else None, instant(data["effective_at"]))


def _grouped(items: Iterable[tuple[int, dict]], upto: int) -> Iterator[tuple[str, list[Stored]]]:
    by_patient: dict[str, list[Stored]] = {}
    for position, data in items:
        if position > upto:
            break
        by_patient.setdefault(data["patient_id"], []).append(
            Stored(position, data, None, instant(data["effective_at"])))
    yield from by_patient.items()


def _wal(db: sqlite_utils.Database, attempts: int = 50) -> None:
    """Switch to WAL. The switch ignores the busy timeout, so two readers opening a new file
    at the same moment can see 'database is locked': wait a little and try again."""
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (1 + random.random()))


class write_transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on any error): one writer at a time."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, exc, tb):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def chunks(items: Sequence, size: int = 500) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
