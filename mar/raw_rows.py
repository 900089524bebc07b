"""The stored rows as they are, for the audit walk and the export: SQLite and PostgreSQL.

Rows come as plain tuples in large pages, undecoded: the chain is over the bytes as stored.
Positions are notification ids (the SQLite rowid, PostgreSQL's notification_id); stream
ids are the 32-hex form `mar_index` keeps.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from .errors import StoreError

if TYPE_CHECKING:
    from .store import EventStore

PAGE = 20_000

# (position, stream, version, topic, state, event_id, digest, chain) in stream and version order
StreamRow = tuple


def _is_postgres(store: "EventStore") -> bool:
    return hasattr(store.recorder, "index_table")


@contextmanager
def stream_order(store: "EventStore") -> Iterator[tuple[dict, Iterator[list[StreamRow]]]]:
    """Inside one read transaction: index rows without their event row, keyed by
    (stream, version), and the event rows joined with their index rows, page by page."""
    if _is_postgres(store):
        with _postgres_stream_order(store) as result:
            yield result
        return
    table = store.recorder.events_table_name
    with store.recorder.datastore.transaction(commit=False) as cursor, _not_a_store(store):
        c = cursor.sqlite_cursor
        c.row_factory = None
        c.execute(
            "SELECT i.originator_id, i.originator_version, i.event_id, i.digest, i.chain FROM mar_index i "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} e WHERE e.originator_id = i.originator_id "
            "AND e.originator_version = i.originator_version)"
        )
        orphans = {(r[0], r[1]): (r[2], r[3], r[4]) for r in c.fetchall()}
        c.execute(
            "SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state, "
            f"i.event_id, i.digest, i.chain FROM {table} e LEFT JOIN mar_index i "
            "ON i.originator_id = e.originator_id AND i.originator_version = e.originator_version "
            "ORDER BY e.originator_id, e.originator_version"
        )
        yield orphans, _pages(c)


@contextmanager
def _not_a_store(store: "EventStore") -> Iterator[None]:
    """A SQLite file without mar's tables (opened read-only, nothing was created)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StoreError(f"cannot read {store.url} as a mar store: {exc}") from None


def _pages(c) -> Iterator[list[tuple]]:
    while rows := c.fetchmany(PAGE):
        yield rows


@contextmanager
def _postgres_stream_order(store: "EventStore"):
    from psycopg.rows import tuple_row
    from psycopg.sql import SQL, Identifier

    recorder = store.recorder
    events = SQL("{}.{}").format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
    hex_id = SQL("replace(e.originator_id::text, '-', '')")
    with recorder.datastore.get_connection() as conn, conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        with conn.cursor(row_factory=tuple_row) as c:
            c.execute(SQL(
                "SELECT i.originator_id, i.originator_version, i.event_id, i.digest, i.chain FROM {index} i "
                "WHERE NOT EXISTS (SELECT 1 FROM {events} e WHERE e.originator_id = i.originator_id::uuid "
                "AND e.originator_version = i.originator_version)").format(index=recorder.index_table, events=events))
            orphans = {(r[0], r[1]): (r[2], r[3], r[4]) for r in c.fetchall()}
        with conn.cursor(name="mar_stream_order", row_factory=tuple_row) as c:
            c.execute(SQL(
                "SELECT e.notification_id, {hex}, e.originator_version, e.topic, e.state, "
                "i.event_id, i.digest, i.chain FROM {events} e LEFT JOIN {index} i "
                "ON i.originator_id = {hex} AND i.originator_version = e.originator_version "
                "ORDER BY e.originator_id, e.originator_version").format(
                    hex=hex_id, events=events, index=recorder.index_table))
            yield orphans, _pages(c)


def log_order(store: "EventStore", stream: str | None = None, page: int = 5_000
              ) -> Iterator[tuple[int, int, bytes, str | None, str | None]]:
    """(position, version, state, digest, chain) in notification order, of one stream
    (32-hex id) or of the whole store; a read transaction per page."""
    after = 0
    while True:
        rows = _log_page(store, stream, after, page)
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def _log_page(store: "EventStore", stream: str | None, after: int, page: int) -> list[tuple]:
    recorder = store.recorder
    if _is_postgres(store):
        from psycopg.rows import tuple_row
        from psycopg.sql import SQL, Identifier

        events = SQL("{}.{}").format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        where = SQL("AND e.originator_id = %s::uuid ") if stream else SQL("")
        sql = SQL("SELECT e.notification_id, e.originator_version, e.state, i.digest, i.chain FROM {events} e "
                  "LEFT JOIN {index} i ON i.originator_id = replace(e.originator_id::text, '-', '') "
                  "AND i.originator_version = e.originator_version WHERE e.notification_id > %s {where}"
                  "ORDER BY e.notification_id LIMIT %s").format(events=events, index=recorder.index_table, where=where)
        params = (after, stream, page) if stream else (after, page)
        with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(sql, params)
            return [(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in c.fetchall()]
    where = "AND e.originator_id = ? " if stream else ""
    params = (after, stream, page) if stream else (after, page)
    with recorder.datastore.transaction(commit=False) as c, _not_a_store(store):
        c.execute(
            "SELECT e.rowid, e.originator_version, e.state, i.digest, i.chain "
            f"FROM {recorder.events_table_name} e LEFT JOIN mar_index i ON i.originator_id = e.originator_id "
            f"AND i.originator_version = e.originator_version WHERE e.rowid > ? {where}"
            "ORDER BY e.rowid LIMIT ?", params)
        return [tuple(r) for r in c.fetchall()]


def missing_triggers(store: "EventStore") -> list[str]:
    """The append-only triggers the store should have and does not."""
    recorder = store.recorder
    tables = (recorder.events_table_name, "mar_index", "mar_meta")
    if _is_postgres(store):
        wanted = [f"{t}_{kind}" for t in tables for kind in ("append_only", "no_truncate")]
        with recorder.datastore.get_connection() as conn:
            rows = conn.execute(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = %s AND t.tgname = ANY(%s)",
                (recorder.datastore.schema, wanted)).fetchall()
        present = {list(r.values())[0] if isinstance(r, dict) else r[0] for r in rows}
    else:
        wanted = [f"{t}_{kind}" for t in tables for kind in ("no_update", "no_delete")]
        with recorder.datastore.transaction(commit=False) as c:
            c.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            present = {r[0] for r in c.fetchall()}
    return [name for name in wanted if name not in present]
