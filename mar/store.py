"""The event store: the eventsourcing library's recorders, with mar's own mapper and index.

One stream per patient (see docs/decisions/0001-aggregate-boundary.md). Beside the
library's `stored_events` table, `mar_index` holds, for every stored event, its event
id (the idempotency key), the digest of its content and its tamper-evidence chain hash;
both are written in the same transaction as the event. Triggers make both tables
append-only inside the database.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import os
import random
import sqlite3
import struct
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    OperationalError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from . import security
from .chart import Chart
from .errors import MarError, StoreError, WriteRefused
from .event_types import topic_for, upcast

PATIENT_NAMESPACE = uuid.UUID("6f1c2c53-4a8e-5b7e-9d51-6d61722d7074")
SNAPSHOT_TOPIC = "mar.chart:Chart"
SNAPSHOT_INTERVAL = 200
CHART_CACHE = 1024  # patients whose last written chart a store object keeps


def stream_id(patient_id: str) -> uuid.UUID:
    return uuid.uuid5(PATIENT_NAMESPACE, patient_id)


@dataclass(frozen=True)
class Record:
    """A stored event as mar reads it: its place in the patient stream and its JSON."""

    originator_id: uuid.UUID
    originator_version: int
    data: dict
    topic: str = ""


class MarMapper(Mapper):
    """JSON (orjson) in and out, through the library's compressor and cipher when set."""

    def to_stored_event(self, domain_event: Record) -> StoredEvent:  # type: ignore[override]
        return self.encode(domain_event.originator_id, domain_event.originator_version,
                           domain_event.data, domain_event.topic)

    def encode(self, originator_id: uuid.UUID, version: int, data: dict, topic: str = "") -> StoredEvent:
        """The stored row of one event (or snapshot) given as its JSON form."""
        # An exact-size copy: orjson's output sits in a larger allocation, and holding a
        # batch of 200,000 of them fragments the heap (about 4 KiB each: 800 MB, and a
        # page fault per event). The copy costs a fraction of a microsecond.
        state = memoryview(orjson.dumps(data)).tobytes()
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(originator_id=originator_id, originator_version=version,
                           topic=topic or _topic_for(data["type"]), state=state)

    def decode(self, state: bytes) -> dict:
        try:
            if self.cipher:
                state = self.cipher.decrypt(state)
            if self.compressor:
                state = self.compressor.decompress(state)
            return orjson.loads(state)
        except ValueError as exc:  # the library's cipher and orjson both raise ValueError
            raise security.unreadable(self.cipher, exc) from None

    def to_domain_event(self, stored_event: StoredEvent) -> Record:  # type: ignore[override]
        data = self.decode(stored_event.state)
        if stored_event.topic != SNAPSHOT_TOPIC:
            data = upcast(data)
        oid = stored_event.originator_id
        return Record(oid if isinstance(oid, uuid.UUID) else uuid.UUID(str(oid)),
                      stored_event.originator_version, data, stored_event.topic)


_topic_for = functools.lru_cache(maxsize=None)(topic_for)


def _hexes(stored_events) -> dict:
    """id(stream id object) -> its text form, once per stream of a batch: UUID.hex formats on
    every call and UUID.__hash__ is Python code; the objects stay alive with the batch."""
    out: dict[int, str] = {}
    for s in stored_events:
        oid = s.originator_id
        if id(oid) not in out:
            out[id(oid)] = oid.hex if isinstance(oid, uuid.UUID) else str(oid)
    return out


def chain_hash(prev: str, originator_id: str, version: int, topic: str, state: bytes,
               key: bytes | None, event_id: str = "", digest: str = "") -> str:
    """The link of one stored row: a hash over the previous link, the event row as stored
    and its index row (event id, digest). The fields' lengths go first, so no field can
    spill into the next (decision 0003)."""
    fields = (prev.encode(), originator_id.encode(), str(version).encode(), topic.encode(),
              event_id.encode(), digest.encode(), state)
    msg = _LENGTHS.pack(*map(len, fields)) + b"".join(fields)
    if key:
        h = _hmac_for(key).copy()
        h.update(msg)
        return "hmac-sha256:" + h.hexdigest()
    return "sha256:" + hashlib.sha256(msg).hexdigest()


_LENGTHS = struct.Struct(">7I")


@functools.lru_cache(maxsize=4)
def _hmac_for(key: bytes) -> "hmac.HMAC":
    """HMAC with the key's pads hashed once; each link copies it (half the cost per link)."""
    return hmac.new(key, digestmod=hashlib.sha256)


APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'mar: {table} is append-only; record a correction instead'); END;
CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'mar: {table} is append-only; record a correction instead'); END;
"""

INDEX_TABLE = """
CREATE TABLE IF NOT EXISTS mar_index (
    originator_id TEXT NOT NULL,
    originator_version INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    chain TEXT NOT NULL,
    PRIMARY KEY (originator_id, originator_version),
    UNIQUE (originator_id, event_id)
)
"""


class MarSQLiteRecorder(SQLiteApplicationRecorder):
    """The library's SQLite recorder plus mar_index rows and append-only triggers."""

    chain_key: bytes | None = None

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(INDEX_TABLE)
        statements.append(security.META_TABLE)
        for table in (self.events_table_name, "mar_index", "mar_meta"):
            statements += [s.strip() + ";" for s in APPEND_ONLY.format(table=table).split(";\n") if s.strip()]
        return statements

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent],
                       *, mar_keys: Sequence[tuple[str, str]] | None = None, **kwargs: Any):
        # One executemany, where the library executes row by row to collect each rowid:
        # the rows of one write transaction get consecutive rowids, ending at the last one.
        hexes = _hexes(stored_events)
        c.executemany(self.insert_events_statement,
                      [(hexes[id(s.originator_id)], s.originator_version, s.topic, s.state) for s in stored_events])
        c.execute("SELECT last_insert_rowid()")
        last = c.fetchone()[0]
        ids = list(range(last - len(stored_events) + 1, last + 1))
        if mar_keys is not None:
            rows = index_rows(stored_events, mar_keys, self.chain_key,
                              lambda oid, v: _prev_chain_sqlite(c, oid, v))
            c.executemany("INSERT INTO mar_index VALUES (?,?,?,?,?)", rows)
        return ids

    def select_streams(self, originator_ids: Sequence[str]) -> set[str]:
        """Which of these streams have any stored event (one indexed query per 500)."""
        found: set[str] = set()
        ids = list(originator_ids)
        with self.datastore.transaction(commit=False) as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                c.execute(f"SELECT DISTINCT originator_id FROM {self.events_table_name} "
                          f"WHERE originator_id IN ({','.join('?' * len(chunk))})", chunk)
                found.update(row[0] for row in c.fetchall())
        return found

    def select_index(self, originator_id: str, event_ids: Sequence[str]) -> list[tuple[str, str, int]]:
        """(event id, digest, version) of the given ids already stored in one stream."""
        found = []
        ids = list(event_ids)
        with self.datastore.transaction(commit=False) as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                c.execute(
                    "SELECT event_id, digest, originator_version FROM mar_index "
                    f"WHERE originator_id=? AND event_id IN ({','.join('?' * len(chunk))})",
                    [originator_id, *chunk],
                )
                found += [(row[0], row[1], row[2]) for row in c.fetchall()]
        return found


    def select_meta(self) -> dict[str, str]:
        """The store's mode record (mar.security); empty for a store made before it existed."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='mar_meta'")
            if c.fetchone() is None:
                return {}
            c.execute("SELECT name, value FROM mar_meta")
            return {row[0]: row[1] for row in c.fetchall()}

    def insert_meta_once(self, rows: dict[str, str]) -> None:
        """Record the mode of a new store: only while it has no mode record and no events."""
        values = ",".join("(?,?)" for _ in rows)
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT INTO mar_meta (name, value) SELECT * FROM (VALUES {values}) "
                f"WHERE NOT EXISTS (SELECT 1 FROM mar_meta) "
                f"AND NOT EXISTS (SELECT 1 FROM {self.events_table_name})",
                [x for item in rows.items() for x in item],
            )


def _prev_chain_sqlite(c: SQLiteCursor, oid: str, version: int) -> str | None:
    c.execute("SELECT chain FROM mar_index WHERE originator_id=? AND originator_version=?", (oid, version))
    row = c.fetchone()
    return row[0] if row else None


def index_rows(stored_events, mar_keys, key, prev_lookup) -> list[tuple]:
    rows = []
    last: dict[str, tuple[int, str]] = {}
    hexes = _hexes(stored_events)
    for s, (event_id, digest) in zip(stored_events, mar_keys, strict=True):
        oid = hexes[id(s.originator_id)]
        version = s.originator_version
        if oid in last and last[oid][0] == version - 1:
            prev = last[oid][1]
        elif version == 1:
            prev = ""
        else:
            prev = prev_lookup(oid, version - 1)
            if prev is None:
                raise IntegrityError(f"no index row before version {version} of stream {oid}")
        link = chain_hash(prev, oid, version, s.topic, s.state, key, event_id, digest)
        last[oid] = (version, link)
        rows.append((oid, version, event_id, digest, link))
    return rows


class MarApplication(Application):
    name = "MarStore"


def _sqlite_path(url: str) -> str:
    return url[len("sqlite:///"):] if url.startswith("sqlite:///") else url


class EventStore:
    """mar's store: append patient events, read a patient's stream, read everything in order."""

    def __init__(self, url: str, *, read_only: bool = False, env: dict | None = None):
        self.url = url
        self.read_only = read_only
        settings = dict(env or {})
        settings.update(self._persistence_env(url, read_only))
        try:
            with security.private_files():
                self.app = MarApplication(env=settings)
        except PersistenceError as exc:
            raise StoreError(f"cannot open store {redact(url)}: {exc}") from exc
        except ValueError as exc:  # the library's cipher refuses the key (base64, size)
            raise security.cipher_key_error(exc) from None
        self.app.recorder.chain_key = _chain_key()
        self.mapper: MarMapper = self.app.mapper  # type: ignore[assignment]
        self.recorder = self.app.recorder
        self._charts: OrderedDict[str, Chart] = OrderedDict()  # see remember_charts
        try:
            self.mode = security.open_mode(self)
        except (PersistenceError, sqlite3.Error, MarError) as exc:  # sqlite3: e.g. not a database
            self.app.close()
            if isinstance(exc, MarError):
                raise
            raise StoreError(f"cannot open store {redact(url)}: {exc}") from exc

    @staticmethod
    def _persistence_env(url: str, read_only: bool) -> dict:
        if url.startswith(POSTGRES_SCHEMES):
            return {**_postgres_env(url, read_only), **_common_env()}
        path = _sqlite_path(url)
        if path != ":memory:":
            p = Path(path)
            if read_only and not p.exists():
                raise StoreError(f"no store at {path} (read-only mode does not create one)")
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
            dbname = f"file:{p.resolve()}?mode=ro" if read_only else str(p)
        else:
            dbname = "file::memory:?cache=shared"
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": dbname,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "mar.store:MarSQLiteRecorder",
            "CREATE_TABLE": "n" if read_only else "y",
        }
        return {**env, **_common_env()}

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing ------------------------------------------------------------------

    def append(self, records: Sequence[Record], keys: Sequence[tuple[str, str]]) -> None:
        """Store records and their (event id, digest) keys in one transaction."""
        self.append_stored([self.mapper.to_stored_event(r) for r in records], keys)

    def append_stored(self, stored: Sequence[StoredEvent], keys: Sequence[tuple[str, str]]) -> None:
        """`append` of rows already encoded with `self.mapper.encode` (a writer that encodes
        each event as it is checked reads its JSON while it is still in the CPU's cache)."""
        if self.read_only:
            raise WriteRefused("the store is open read-only; nothing was written")
        security.check_writable(self.mode, self.recorder.chain_key, self.mapper.cipher)
        try:
            # Straight to the recorder, as Application.save ends up doing: save would add a
            # runtime Protocol isinstance check and a Recording object per event that nothing
            # reads here (together about half the append time of a large import).
            self.recorder.insert_events(stored, mar_keys=list(keys))
        except CONFLICTS:
            raise
        except PersistenceError as exc:  # e.g. no INSERT right: not worth a retry
            raise StoreError(f"cannot write to store {redact(self.url)}: {exc}; nothing was written") from exc

    def save_snapshot(self, chart: Chart) -> None:
        self.save_snapshots([chart])

    def save_snapshots(self, charts: Sequence[Chart]) -> None:
        """Snapshots of charts, in one transaction. They are a cache: a conflict only means
        another writer stored the same snapshot, and the others are then stored one by one."""
        records = [Record(stream_id(c.patient_id), c.version, c.to_dict(), SNAPSHOT_TOPIC) for c in charts]
        try:
            self.app.snapshots.put(records)  # type: ignore[union-attr]
        except IntegrityError:
            if len(records) > 1:
                for record in records:
                    try:
                        self.app.snapshots.put([record])  # type: ignore[union-attr]
                    except IntegrityError:
                        pass

    # --- reading ------------------------------------------------------------------

    def load_chart(self, patient_id: str) -> Chart:
        """The validation chart: the one this process last wrote (or else the latest snapshot)
        plus the events stored after it. The caller may change what it gets."""
        sid = stream_id(patient_id)
        cached = self._charts.get(patient_id)
        if cached is not None:
            self._charts.move_to_end(patient_id)
            chart = cached.copy()
        else:
            chart = Chart(patient_id)
            snaps = self.app.snapshots.get(sid, desc=True, limit=1)  # type: ignore[union-attr]
            for snap in snaps:
                chart = Chart.from_dict(snap.data)
        # The rows straight from the recorder, decoded and upcast as the mapper does, without
        # a Record per event: this replay is most of the cost of recording one event.
        decode = self.mapper.decode
        for stored in self.recorder.select_events(sid, gt=chart.version or None):
            chart.apply(upcast(decode(stored.state)), stored.originator_version)
        return chart

    def remember_charts(self, charts: Iterable[Chart]) -> None:
        """Keep the charts just written (folded up to their stored version) for the next write
        of the same patients: a workstation recording dose after dose then reads only the
        events others stored since, instead of a snapshot and up to 199 events each time.
        Events never change once stored, so a kept chart is never wrong, only behind."""
        for chart in charts:
            self._charts[chart.patient_id] = chart
            self._charts.move_to_end(chart.patient_id)
        while len(self._charts) > CHART_CACHE:
            self._charts.popitem(last=False)

    def stream(self, patient_id: str) -> list[Record]:
        return list(self.app.events.get(stream_id(patient_id)))

    def patients_with_events(self, patient_ids: Sequence[str]) -> set[str] | None:
        """The patients among these with any stored event, in one query per 500 patients;
        None when the backend has no such query (then each patient is looked up alone)."""
        select = getattr(self.recorder, "select_streams", None)
        if select is None:
            return None
        by_hex = {stream_id(p).hex: p for p in patient_ids}
        return {by_hex[h] for h in select(list(by_hex))}

    def known_ids(self, patient_id: str, event_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """event id -> (digest, version) for the ids already stored for this patient."""
        rows = self.recorder.select_index(stream_id(patient_id).hex, event_ids)
        return {event_id: (digest, version) for event_id, digest, version in rows}

    def event_type(self, patient_id: str, event_id: str) -> str | None:
        hit = self.known_ids(patient_id, [event_id])
        if not hit:
            return None
        _, version = hit[event_id]
        records = self.app.events.get(stream_id(patient_id), gt=version - 1, lte=version)
        return next(iter(records)).data["type"]

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def read_all(self, after: int = 0, limit: int = 1000, stop: int | None = None
                 ) -> list[tuple[int, dict]]:
        """Events in store order (notification id), each as (position, dict)."""
        notes = self.recorder.select_notifications(after + 1, limit, stop=stop)
        decode = self.mapper.decode
        return [(n.id, upcast(decode(n.state))) for n in notes]

    def iter_all(self, after: int = 0, page: int = 1000) -> Iterator[tuple[int, dict]]:
        while True:
            batch = self.read_all(after, page)
            if not batch:
                return
            yield from batch
            after = batch[-1][0]


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _postgres_env(url: str, read_only: bool) -> dict:
    try:
        from . import store_postgres
    except ImportError as exc:
        raise StoreError(f"a PostgreSQL store needs the postgres extra: pip install 'mar[postgres]' ({exc})") from None
    return store_postgres.persistence_env(url, read_only)


def redact(url: str) -> str:
    """The store URL as shown in messages: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _common_env() -> dict:
    """Settings shared by every backend: our mapper, snapshots, and the cipher when keyed."""
    env = {"MAPPER_TOPIC": "mar.store:MarMapper", "IS_SNAPSHOTTING_ENABLED": "y"}
    cipher_key = os.environ.get("MAR_CIPHER_KEY")
    if cipher_key:
        env["CIPHER_TOPIC"] = "eventsourcing.cipher:AESCipher"
        env["CIPHER_KEY"] = cipher_key
    return env


def _chain_key() -> bytes | None:
    key = os.environ.get("MAR_HMAC_KEY")
    return key.encode() if key else None


def retrying(attempts: int = 6):
    """Yield attempt numbers; the caller breaks on success. Sleeps a little between tries."""
    for attempt in range(attempts):
        yield attempt
        # Random jitter, so that writers which collided once do not collide again in step.
        time.sleep(min(0.01 * (2 ** attempt), 0.5) * random.uniform(0.5, 1.5))


CONFLICTS = (IntegrityError, OperationalError)
