"""The PostgreSQL store: the library's PostgreSQL recorder plus mar_index and append-only rules.

Selected by a `postgresql://user[:password]@host[:port]/dbname[?schema=NAME]` URL. The
tables are the library's (`marstore_events`, `marstore_snapshots`) and `mar_index`, with
the same columns and constraints as on SQLite.

The library serialises writers with an EXCLUSIVE lock on the events table, so that
notification ids are issued in commit order (readers never skip a gap filled later). The
index rows go into the same transaction as the events. Their chain continues from the
link of the version the writer loaded, which is committed and immutable; a writer that
lost the race to that version fails on the events' primary key and retries. BEGIN, lock,
inserts and COMMIT are sent in one pipeline, so the lock never waits on a client.
"""
from __future__ import annotations

import os
import uuid
from typing import Any, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.persistence import InterfaceError, OperationalError, ProgrammingError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier, Literal

from .errors import StoreError
from .store import MarApplication, index_rows, redact

# Creation of tables, functions and triggers by several first-time openers at once would
# race in the catalog; one advisory lock per database makes them take turns.
_SCHEMA_LOCK = 0x6D61725F736368  # "mar_sch"

INDEX_TABLE = """
CREATE TABLE IF NOT EXISTS {schema}.mar_index (
    originator_id TEXT NOT NULL,
    originator_version BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    chain TEXT NOT NULL,
    PRIMARY KEY (originator_id, originator_version),
    UNIQUE (originator_id, event_id)
)
"""

META_TABLE = """
CREATE TABLE IF NOT EXISTS {schema}.mar_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.mar_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mar: % is append-only; record a correction instead', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$
"""

# Row triggers for UPDATE and DELETE, a statement trigger for TRUNCATE (a bulk DELETE).
APPEND_ONLY_TRIGGERS = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = {name} AND tgrelid = {table_text}::regclass) THEN
        CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {schema}.{table}
            FOR EACH ROW EXECUTE FUNCTION {schema}.mar_append_only();
        CREATE TRIGGER {truncate_trigger} BEFORE TRUNCATE ON {schema}.{table}
            FOR EACH STATEMENT EXECUTE FUNCTION {schema}.mar_append_only();
    END IF;
END $$
"""


def persistence_env(url: str, read_only: bool) -> dict:
    """Library settings for a PostgreSQL URL; fails early and clearly if it cannot connect."""
    params = parse_url(url)
    complete = _probe(url, params)
    # A reader needs the tables only: an auditor must be able to verify a store whose
    # append-only triggers were dropped (`mar verify` reports them missing).
    if read_only and not complete and not _probe(url, params, store_tables):
        raise StoreError(f"no store at {redact(url)} (read-only mode does not create one)")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": params["dbname"],
        "POSTGRES_HOST": params["host"],
        "POSTGRES_PORT": params["port"],
        "POSTGRES_USER": params["user"],
        "POSTGRES_PASSWORD": params["password"],
        "POSTGRES_SCHEMA": params["schema"],
        # A CLI process needs one connection; a subscription listens on one more.
        "POSTGRES_POOL_SIZE": "1",
        "POSTGRES_MAX_OVERFLOW": "4",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "APPLICATION_RECORDER_TOPIC": "mar.store_postgres:MarPostgresRecorder",
        # An existing store needs no DDL, so a role with only SELECT and INSERT rights works.
        "CREATE_TABLE": "n" if complete or read_only else "y",
    }


def parse_url(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or not parts.hostname:
        raise StoreError(f"cannot open store {redact(url)}: a PostgreSQL URL needs a host and a "
                         "database name: postgresql://user@host:port/dbname")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"schema"})
    if unknown:
        raise StoreError(f"cannot open store {redact(url)}: unknown URL parameter(s) "
                         f"{', '.join(unknown)} (known: schema)")
    try:
        port = parts.port or 5432
    except ValueError:
        raise StoreError(f"cannot open store {redact(url)}: the port is not a number") from None
    return {
        "host": parts.hostname,
        "port": str(port),
        "dbname": dbname,
        "user": unquote(parts.username or "") or _default_user(),
        # An explicit empty password would hide PGPASSWORD from libpq (~/.pgpass still works).
        "password": unquote(parts.password or "") or os.environ.get("PGPASSWORD", ""),
        "schema": query.get("schema", [""])[-1],
    }


def _default_user() -> str:
    import getpass

    return getpass.getuser()


def _probe(url: str, p: dict[str, str], check=None) -> bool:
    """One direct connection: a clear error now instead of the pool's retries later.

    Returns whether the store's tables and triggers are all there already (or what
    `check` says)."""
    import psycopg

    try:
        with psycopg.connect(host=p["host"], port=p["port"], dbname=p["dbname"], user=p["user"],
                             password=p["password"] or None, connect_timeout=10) as conn:
            return (check or store_complete)(conn, p["schema"] or "public", MarApplication.name.lower())
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"cannot open store {redact(url)}: {reason}") from None


def store_complete(conn, schema: str, prefix: str) -> bool:
    """The last things created exist: every append-only trigger and the snapshots table."""
    triggers = [f"{table}_append_only" for table in (f"{prefix}_events", "mar_index", "mar_meta")]
    row = conn.execute(
        "SELECT (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "        JOIN pg_namespace s ON s.oid = c.relnamespace "
        "        WHERE s.nspname = %s AND t.tgname = ANY(%s)) = %s "
        "   AND to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
        (schema, triggers, len(triggers), schema, f"{prefix}_snapshots"),
    ).fetchone()
    return bool(row and list(row.values() if isinstance(row, dict) else row)[0])


def store_tables(conn, schema: str, prefix: str) -> bool:
    """The tables a reader needs exist: events, index and mode record."""
    row = conn.execute(
        "SELECT bool_and(to_regclass(format('%%I.%%I', %s::text, t)) IS NOT NULL) "
        "FROM unnest(%s::text[]) AS t",
        (schema, [f"{prefix}_events", "mar_index", "mar_meta"]),
    ).fetchone()
    return bool(row and list(row.values() if isinstance(row, dict) else row)[0])


class MarPostgresRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL recorder plus mar_index rows and append-only triggers."""

    chain_key: bytes | None = None

    def __init__(self, datastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        self.index_table = SQL("{}.mar_index").format(schema)
        # Rendered once: psycopg would otherwise render composed SQL at every execution.
        self.insert_index_statement = SQL(
            "INSERT INTO {} SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[])"
        ).format(self.index_table).as_string(None)
        self._insert_events_sql = self.insert_events_statement.as_string(None)
        self._links: dict[str, tuple[int, str]] = {}  # stream -> (version, chain link) last written here
        self._lock_sql = [statement.as_string(None) for statement in self.lock_table_statements]
        self._notify_sql = SQL("NOTIFY {}").format(Identifier(self.channel_name)).as_string(None)
        self._previous_links_sql = SQL(
            "SELECT i.originator_id, i.originator_version, i.chain FROM {} i "
            "JOIN unnest(%s::text[], %s::bigint[]) AS w(oid, v) "
            "ON i.originator_id = w.oid AND i.originator_version = w.v").format(self.index_table).as_string(None)
        self._select_index_sql = SQL(
            "SELECT event_id, digest, originator_version FROM {} "
            "WHERE originator_id = %s AND event_id = ANY(%s)").format(self.index_table).as_string(None)
        self.sql_create_statements.append(SQL(INDEX_TABLE).format(schema=schema))
        self.meta_table = SQL("{}.mar_meta").format(schema)
        self.sql_create_statements.append(SQL(META_TABLE).format(schema=schema))
        self.sql_create_statements.append(SQL(APPEND_ONLY_FUNCTION).format(schema=schema))
        for table in self.append_only_tables:
            self.sql_create_statements.append(SQL(APPEND_ONLY_TRIGGERS).format(
                schema=schema, table=Identifier(table),
                name=Literal(f"{table}_append_only"),
                table_text=Literal(f'"{self.datastore.schema}"."{table}"'),
                trigger=Identifier(f"{table}_append_only"),
                truncate_trigger=Identifier(f"{table}_no_truncate"),
            ))

    @property
    def append_only_tables(self) -> tuple[str, ...]:
        return (self.events_table_name, "mar_index", "mar_meta")

    def create_table(self) -> None:
        # First-time creators take turns (catalog races otherwise); the snapshots table is
        # made here too, so that the library's own CREATE ... IF NOT EXISTS finds it.
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            try:
                if store_complete(conn, self.datastore.schema, self._prefix):
                    self.datastore.register_type_adapters()
                    return
                conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(self.datastore.schema)))
                super().create_table()
                snapshots = PostgresAggregateRecorder(self.datastore, events_table_name=f"{self._prefix}_snapshots")
                snapshots.create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))

    @property
    def _prefix(self) -> str:
        return self.events_table_name.removesuffix("_events")

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], *,
                      mar_keys: Sequence[tuple[str, str]] | None = None, **kwargs: Any) -> Sequence[int] | None:
        """The library's insert (table lock, NOTIFY, events) plus the index rows, committed
        in one round trip, so that the table lock is never held while waiting for this client.

        The previous links are read first, outside the transaction: a batch continues from
        versions its writer loaded, committed and immutable; if another writer got there
        first, the events insert fails on its primary key and the write is retried. Then
        BEGIN, lock, inserts and COMMIT go to the server in one pipeline: the lock lasts as
        long as the server's work and its WAL flush, whatever this process does meanwhile.

        Statements carry about a megabyte each: in pipeline mode psycopg 3.2 and 3.3 hang
        when one statement carries more than several megabytes (the server waits in
        ClientRead for the rest of a message that is never flushed).
        """
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn:
            rows = []
            if mar_keys is not None:
                with conn.cursor() as curs:
                    prev = self._previous_links(curs, stored_events)
                rows = index_rows(stored_events, mar_keys, self.chain_key, lambda oid, v: prev.get((oid, v)))
            failure: Exception | None = None
            with conn.pipeline() as pipeline, conn.cursor() as curs, conn.cursor() as inserts:
                curs.execute("BEGIN")
                self._lock_table(curs)
                self._notify_channel(curs)
                inserts.executemany(self._insert_events_sql, self._event_chunks(stored_events), returning=True)
                if rows:
                    curs.executemany(self.insert_index_statement, _index_chunks(rows))
                curs.execute("COMMIT")
                try:
                    pipeline.sync()
                    ids = self._notification_ids(inserts, stored_events)
                except Exception as exc:  # raised after the pipeline block, as the library does
                    failure = exc
            if failure is not None:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                raise failure
        self._remember_links(rows)
        return ids

    def _remember_links(self, rows: list[tuple]) -> None:
        """Keep the last committed link of each stream written: the next write to it (a nurse
        recording dose after dose) continues from it without asking the server."""
        if len(self._links) > LINK_CACHE:
            self._links.clear()
        for oid, version, _event_id, _digest, link in rows:
            self._links[oid] = (version, link)

    def _lock_table(self, curs: Cursor[DictRow]) -> None:
        for statement in self._lock_sql:
            curs.execute(statement, prepare=True)

    def _notify_channel(self, curs: Cursor[DictRow]) -> None:
        curs.execute(self._notify_sql)

    def _event_chunks(self, stored_events: Sequence[StoredEvent]) -> list[tuple]:
        pg_events = [self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
                     for e in stored_events]
        return [(c,) for c in _chunks(pg_events, [len(e.state) + 64 for e in stored_events])]

    @staticmethod
    def _notification_ids(curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]) -> list[int]:
        ids = [row["notification_id"] for row in curs.fetchall()]
        while curs.nextset():
            ids += [row["notification_id"] for row in curs.fetchall()]
        if len(ids) != len(stored_events):
            raise ProgrammingError(f"got {len(ids)} notification ids for {len(stored_events)} events")
        return ids

    def _previous_links(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]
                        ) -> dict[tuple[str, int], str]:
        """The chain link each stream in the batch continues from, in one query."""
        first: dict[str, int] = {}
        for s in stored_events:
            first.setdefault(_hex(s.originator_id), s.originator_version)
        wanted, known = [], {}
        for oid, v in first.items():
            if v == 1:
                continue
            kept = self._links.get(oid)
            if kept is not None and kept[0] == v - 1:
                known[(oid, v - 1)] = kept[1]  # committed, hence immutable
            else:
                wanted.append((oid, v - 1))
        if wanted:
            curs.execute(self._previous_links_sql, [[w[0] for w in wanted], [w[1] for w in wanted]])
            known.update({(r["originator_id"], r["originator_version"]): r["chain"] for r in curs.fetchall()})
        return known

    def select_index(self, originator_id: str, event_ids: Sequence[str]) -> list[tuple[str, str, int]]:
        """(event id, digest, version) of the given ids already stored in one stream."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_index_sql, (originator_id, list(event_ids)))
            return [(r["event_id"], r["digest"], r["originator_version"]) for r in curs.fetchall()]

    def select_meta(self) -> dict[str, str]:
        """The store's mode record (mar.security); empty when there is none."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute("SELECT to_regclass(%s) AS t", (f'"{self.datastore.schema}".mar_meta',))
            row = curs.fetchone()
            if row is None or row["t"] is None:
                return {}
            curs.execute(SQL("SELECT name, value FROM {}").format(self.meta_table))
            return {r["name"]: r["value"] for r in curs.fetchall()}

    def insert_meta_once(self, rows: dict[str, str]) -> None:
        """Record the mode of a new store: only while it has no mode record and no events."""
        events = SQL("{}.{}").format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        with self.datastore.transaction(commit=True) as curs:
            # First openers take turns, so that one whole mode record wins.
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            curs.execute(
                SQL("INSERT INTO {meta} (name, value) SELECT * FROM unnest(%s::text[], %s::text[]) "
                    "WHERE NOT EXISTS (SELECT 1 FROM {meta}) AND NOT EXISTS (SELECT 1 FROM {events})"
                    ).format(meta=self.meta_table, events=events),
                (list(rows), list(rows.values())),
            )


LINK_CACHE = 4096  # streams whose last link a recorder keeps

# Bytes per statement: far below the size at which pipelined statements hang.
CHUNK_BYTES = 1 << 20


def _chunks(items: list, sizes: list[int]) -> list[list]:
    """Consecutive runs of items whose sizes add up to about CHUNK_BYTES at most."""
    chunks, current, total = [], [], 0
    for item, size in zip(items, sizes):
        if current and total + size > CHUNK_BYTES:
            chunks.append(current)
            current, total = [], 0
        current.append(item)
        total += size
    if current:
        chunks.append(current)
    return chunks


def _index_chunks(rows: list[tuple]) -> list[list[list]]:
    """Index rows as column arrays, about a megabyte per statement."""
    return [[list(column) for column in zip(*chunk)] for chunk in _chunks(rows, [len(r[2]) + 220 for r in rows])]


def _hex(oid) -> str:
    return oid.hex if isinstance(oid, uuid.UUID) else str(oid)
