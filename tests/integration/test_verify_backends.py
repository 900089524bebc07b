"""`mar verify` and `mar export` on every backend under test (SQLite, and PostgreSQL when
MAR_TEST_POSTGRES is set): the four tamperings, and an export restored into another store."""
from __future__ import annotations

import json
import sqlite3

import pytest

from mar.store import EventStore

from .audit_case import P1, P2, TRIGGERS, run, write_case


class Tamper:
    """Direct access to the store's tables, append-only triggers dropped first."""

    def __init__(self, url: str):
        self.url = url
        self.postgres = url.startswith("postgresql://")
        self.events = "marstore_events" if self.postgres else "stored_events"
        self.position = "notification_id" if self.postgres else "rowid"
        self.stream = "replace(originator_id::text, '-', '')" if self.postgres else "originator_id"

    def execute(self, *statements: tuple[str, tuple]) -> list:
        out = self._execute(statements)
        EventStore(self.url).close()  # the triggers come back: a writable open re-creates them
        return out

    def _execute(self, statements) -> list:
        if self.postgres:
            import psycopg

            with psycopg.connect(self.url, autocommit=False) as conn:
                for table in (self.events, "mar_index", "mar_meta"):
                    for trigger in ("append_only", "no_truncate"):
                        conn.execute(f"DROP TRIGGER IF EXISTS {table}_{trigger} ON {table}")
                out = [conn.execute(sql.replace("?", "%s"), params).fetchall() if sql.startswith("SELECT")
                       else conn.execute(sql.replace("?", "%s"), params) for sql, params in statements]
                conn.commit()
                return out
        con = sqlite3.connect(self.url)
        try:
            for name in TRIGGERS:
                con.execute(f"DROP TRIGGER IF EXISTS {name}")
            out = [con.execute(sql, params).fetchall() for sql, params in statements]
            con.commit()
            return out
        finally:
            con.close()

    def rows(self) -> dict[tuple[str, int], dict]:
        (found,) = self.execute((
            f"SELECT e.{self.position}, {self.stream.replace('originator_id', 'e.originator_id')}, "
            "e.originator_version, e.state, i.chain FROM " + self.events + " e JOIN mar_index i "
            f"ON i.originator_id = {self.stream.replace('originator_id', 'e.originator_id')} "
            "AND i.originator_version = e.originator_version", ()))
        return {(json.loads(bytes(state))["patient_id"], version): {"position": pos, "stream": oid, "chain": chain,
                                                                    "state": bytes(state)}
                for pos, oid, version, state, chain in found}

    def where(self, row: dict) -> str:
        return f"{self.position} = {int(row['position'])}"


@pytest.fixture
def store(runner, store_url, tmp_path):
    run(runner, store_url, "import", str(write_case(tmp_path / "case.jsonl", P1 + P2)))
    return store_url


def verify(runner, url, code, *args) -> dict:
    return json.loads(run(runner, url, "verify", "--json", *args, code=code).stdout)


def found(report) -> list[tuple]:
    return [(b["kind"], b["patient_id"], b["version"], b["position"]) for b in report["breaks"]]


def test_fresh(runner, store):
    report = verify(runner, store, 0)
    assert (report["events"], report["streams"], report["breaks_total"]) == (12, 2, 0)


def test_dropped_triggers(runner, store):
    t = Tamper(store)
    t._execute([])
    report = verify(runner, store, 1)
    assert found(report) == [("unprotected", None, None, None)]
    assert report["breaks"][0]["detail"].startswith("append-only triggers missing: ")


def test_modified(runner, store):
    t = Tamper(store)
    row = t.rows()[("p1", 5)]
    state = row["state"].replace(b'"value":40.0', b'"value":80.0')
    t.execute((f"UPDATE {t.events} SET state = ? WHERE {t.where(row)}", (state,)))
    assert found(verify(runner, store, 1)) == [("changed", "p1", 5, row["position"])]


def test_deleted(runner, store):
    t = Tamper(store)
    row = t.rows()[("p2", 3)]
    t.execute((f"DELETE FROM {t.events} WHERE {t.where(row)}", ()),
              ("DELETE FROM mar_index WHERE chain = ?", (row["chain"],)))
    assert found(verify(runner, store, 1)) == [("missing", "p2", 3, None)]


def test_reordered(runner, store):
    t = Tamper(store)
    r = t.rows()
    a, b = r[("p1", 5)], r[("p1", 6)]
    t.execute((f"UPDATE {t.events} SET state = ? WHERE {t.where(a)}", (b["state"],)),
              (f"UPDATE {t.events} SET state = ? WHERE {t.where(b)}", (a["state"],)))
    assert found(verify(runner, store, 1)) == [("changed", "p1", 5, a["position"]), ("changed", "p1", 6, b["position"])]


def test_inserted(runner, store):
    t = Tamper(store)
    r = t.rows()
    last = r[("p2", 5)]
    stream = last["stream"]
    oid = f"'{stream}'::uuid" if t.postgres else f"'{stream}'"
    t.execute((f"INSERT INTO {t.events} (originator_id, originator_version, topic, state) "
               f"VALUES ({oid}, 6, 'mar.events:InfusionRateChanged', ?)", (last["state"],)),
              ("INSERT INTO mar_index VALUES (?, 6, 'p2/extra', ?, ?)", (stream, "0" * 64, last["chain"])))
    report = verify(runner, store, 1)
    assert [(k, p, v) for k, p, v, _ in found(report)] == [("changed", "p2", 6)]


def test_truncated_tail_needs_an_anchor(runner, store, tmp_path):
    anchor = tmp_path / "anchor.json"
    anchor.write_text(run(runner, store, "verify", "--json").stdout)
    t = Tamper(store)
    row = t.rows()[("p1", 7)]
    t.execute((f"DELETE FROM {t.events} WHERE {t.where(row)}", ()),
              ("DELETE FROM mar_index WHERE chain = ?", (row["chain"],)))
    verify(runner, store, 0)
    assert found(verify(runner, store, 1, "--anchor", str(anchor))) == [("anchor", "p1", 7, None)]


def test_an_export_restores_into_a_sqlite_store(runner, store, tmp_path):
    run(runner, store, "export", "-o", str(tmp_path / "x.jsonl"))
    copy = str(tmp_path / "copy.db")
    assert run(runner, copy, "import", str(tmp_path / "x.jsonl")).stdout.endswith("12 added, 0 already stored (2 patients changed)\n")
    verify(runner, copy, 0)
    strip = lambda out: [{k: v for k, v in json.loads(x).items() if k not in ("stored_at", "chain")}  # noqa: E731
                         for x in out.splitlines()]
    assert strip(run(runner, copy, "export").stdout) == strip(run(runner, store, "export").stdout)
