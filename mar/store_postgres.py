"""The PostgreSQL store: the library's PostgreSQL recorder plus mar_index and append-only rules.

Selected by a `postgresql://user[:password]@host[:port]/dbname[?schema=NAME]` URL. The
tables are the library's (`marstore_events`, `marstore_snapshots`) and `mar_index`, with
the same columns and constraints as on SQLite.

The library serialises writers with an EXCLUSIVE lock on the events table, so that
notification ids are issued in commit order (readers never skip a gap filled later). The
index rows are written after the events insert, inside the same transaction and under
that lock, so the previous chain link a row builds on is always committed and final.
"""
from __future__ import annotations

import uuid
from typing import Any, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier, Literal

from .errors import StoreError

SCHEMES = ("postgresql://", "postgres://")

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


def is_postgres_url(url: str) -> bool:
    return url.startswith(SCHEMES)


def persistence_env(url: str, read_only: bool) -> dict:
    """Library settings for a PostgreSQL URL; fails early and clearly if it cannot connect."""
    params = parse_url(url)
    _probe(url, params, read_only)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": params["dbname"],
        "POSTGRES_HOST": params["host"],
        "POSTGRES_PORT": params["port"],
        "POSTGRES_USER": params["user"],
        # Empty means libpq's own sources: PGPASSWORD or ~/.pgpass.
        "POSTGRES_PASSWORD": params["password"],
        "POSTGRES_SCHEMA": params["schema"],
        # A CLI process needs one connection; a subscription listens on one more.
        "POSTGRES_POOL_SIZE": "1",
        "POSTGRES_MAX_OVERFLOW": "4",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "APPLICATION_RECORDER_TOPIC": "mar.store_postgres:MarPostgresRecorder",
        "CREATE_TABLE": "n" if read_only else "y",
    }


def parse_url(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or not parts.hostname:
        raise StoreError(f"cannot open store {_redact(url)}: a PostgreSQL URL needs a host and a "
                         "database name: postgresql://user@host:port/dbname")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"schema"})
    if unknown:
        raise StoreError(f"cannot open store {_redact(url)}: unknown URL parameter(s) "
                         f"{', '.join(unknown)} (known: schema)")
    try:
        port = parts.port or 5432
    except ValueError:
        raise StoreError(f"cannot open store {_redact(url)}: the port is not a number") from None
    return {
        "host": parts.hostname,
        "port": str(port),
        "dbname": dbname,
        "user": unquote(parts.username or "") or _default_user(),
        "password": unquote(parts.password or ""),
        "schema": query.get("schema", [""])[-1],
    }


def _default_user() -> str:
    import getpass

    return getpass.getuser()


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _probe(url: str, p: dict[str, str], read_only: bool) -> None:
    """One direct connection: a clear error now instead of the pool's retries later."""
    import psycopg

    try:
        with psycopg.connect(host=p["host"], port=p["port"], dbname=p["dbname"], user=p["user"],
                             password=p["password"] or None, connect_timeout=10) as conn:
            if read_only:
                schema = p["schema"] or "public"
                row = conn.execute("SELECT to_regclass(%s)", (f"{schema}.marstore_events",)).fetchone()
                if row is None or row[0] is None:
                    raise StoreError(f"no store at {_redact(url)} (read-only mode does not create one)")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"cannot open store {_redact(url)}: {reason}") from None


class MarPostgresRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL recorder plus mar_index rows and append-only triggers."""

    chain_key: bytes | None = None

    def __init__(self, datastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        self.index_table = SQL("{}.mar_index").format(schema)
        self.sql_create_statements.append(SQL(INDEX_TABLE).format(schema=schema))
        self.sql_create_statements.append(SQL(APPEND_ONLY_FUNCTION).format(schema=schema))
        for table in (self.events_table_name, "mar_index"):
            self.sql_create_statements.append(SQL(APPEND_ONLY_TRIGGERS).format(
                schema=schema, table=Identifier(table),
                name=Literal(f"{table}_append_only"),
                table_text=Literal(f'"{self.datastore.schema}"."{table}"'),
                trigger=Identifier(f"{table}_append_only"),
                truncate_trigger=Identifier(f"{table}_no_truncate"),
            ))

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        if not self._exists(curs):
            super()._create_table(curs)

    def _exists(self, curs: Cursor[DictRow]) -> bool:
        """Everything made already: skip the DDL, which would queue behind writers' locks."""
        curs.execute(
            "SELECT count(*) AS n FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace s ON s.oid = c.relnamespace "
            "WHERE s.nspname = %s AND t.tgname = ANY(%s)",
            (self.datastore.schema, [f"{self.events_table_name}_append_only", "mar_index_append_only"]),
        )
        row = curs.fetchone()
        return bool(row and row["n"] == 2)

    def _fetch_ids_after_insert_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent],
                                       *, mar_keys: Sequence[tuple[str, str]] | None = None,
                                       **kwargs: Any) -> Sequence[int] | None:
        # Called after the events insert succeeded, still holding the table lock.
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if mar_keys is not None:
            from .store import index_rows

            prev = self._previous_links(curs, stored_events)
            rows = index_rows(stored_events, mar_keys, self.chain_key, lambda oid, v: prev.get((oid, v)))
            if rows:
                columns = list(zip(*rows))
                curs.execute(
                    SQL("INSERT INTO {} SELECT * FROM unnest(%s::text[], %s::bigint[], "
                        "%s::text[], %s::text[], %s::text[])").format(self.index_table),
                    [list(c) for c in columns],
                )
        return ids

    def _previous_links(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]
                        ) -> dict[tuple[str, int], str]:
        """The chain link each stream in the batch continues from, in one query."""
        first: dict[str, int] = {}
        for s in stored_events:
            first.setdefault(_hex(s.originator_id), s.originator_version)
        wanted = [(oid, v - 1) for oid, v in first.items() if v > 1]
        if not wanted:
            return {}
        curs.execute(
            SQL("SELECT i.originator_id, i.originator_version, i.chain FROM {} i "
                "JOIN unnest(%s::text[], %s::bigint[]) AS w(oid, v) "
                "ON i.originator_id = w.oid AND i.originator_version = w.v").format(self.index_table),
            [[w[0] for w in wanted], [w[1] for w in wanted]],
        )
        return {(r["originator_id"], r["originator_version"]): r["chain"] for r in curs.fetchall()}

    def select_index(self, originator_id: str, event_ids: Sequence[str]) -> list[tuple[str, str, int]]:
        """(event id, digest, version) of the given ids already stored in one stream."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT event_id, digest, originator_version FROM {} "
                    "WHERE originator_id = %s AND event_id = ANY(%s)").format(self.index_table),
                (originator_id, list(event_ids)),
            )
            return [(r["event_id"], r["digest"], r["originator_version"]) for r in curs.fetchall()]


def _hex(oid) -> str:
    return oid.hex if isinstance(oid, uuid.UUID) else str(oid)
