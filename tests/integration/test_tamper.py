"""Tamper evidence: `mar verify` on a fresh store, and after changing the SQLite file directly
(append-only triggers dropped first) in each of the four ways: modify, delete, reorder, insert."""
from __future__ import annotations

import json

import pytest

from mar.store import chain_hash

from .audit_case import make_store, rows, run, tamper

KEY = "k0aLq1zJ6x0m1Qyq3m8cJ0y0s2b9rWZ2b4Y7b3Jw9eM="


def verify(runner, db, code, *args):
    return json.loads(run(runner, db, "verify", "--json", *args, code=code).stdout)


def found(report) -> list[tuple]:
    return [(b["kind"], b["patient_id"], b["version"], b["position"]) for b in report["breaks"]]


@pytest.fixture
def db(runner, tmp_path):
    return make_store(runner, tmp_path)


def dose_80(state: bytes) -> bytes:
    changed = state.replace(b'"value":40.0', b'"value":80.0')
    assert changed != state
    return changed


# --- a fresh store ------------------------------------------------------------------------------


def test_a_fresh_store_verifies(runner, db):
    result = run(runner, db, "verify")
    first, second = result.stdout.splitlines()
    assert first == "verified 12 events in 2 streams (sha256 chain): every link holds"
    report = verify(runner, db, 0)
    assert second == f"store head {report['store_head']}"
    assert (report["ok"], report["events"], report["streams"], report["breaks"]) == (True, 12, 2, [])
    r = rows(db)
    assert sorted((h["patient_id"], h["version"], h["chain"], h["position"]) for h in report["heads"]) == [
        ("p1", 7, r[("p1", 7)]["chain"], r[("p1", 7)]["position"]),
        ("p2", 5, r[("p2", 5)]["chain"], r[("p2", 5)]["position"]),
    ]


def test_an_empty_store_verifies(runner, tmp_path):
    from mar.store import EventStore

    db = tmp_path / "empty.db"
    EventStore(str(db)).close()
    assert run(runner, db, "verify").stdout.startswith("verified 0 events in 0 streams (sha256 chain): every link holds\n")


# --- modified -----------------------------------------------------------------------------------


def test_a_modified_event_is_found_at_its_position(runner, db):
    row = rows(db)[("p1", 5)]
    tamper(db, ("UPDATE stored_events SET state=? WHERE rowid=?", (dose_80(row["state"]), row["position"])))
    assert found(verify(runner, db, 1)) == [("changed", "p1", 5, row["position"])]
    text = run(runner, db, "verify", code=1).stdout.splitlines()
    assert text == [
        f"BROKEN changed: position {row['position']}, patient p1, stream {row['stream']}, version 5: "
        "the link does not match: this row (content, version or index) was changed, or the row before it "
        "was replaced",
        "12 events in 2 streams (sha256 chain): 1 break",
    ]


def test_a_modified_index_row_is_found(runner, db):
    row = rows(db)[("p1", 5)]
    tamper(db, ("UPDATE mar_index SET event_id='p1/dose/9' WHERE chain=?", (row["chain"],)))
    assert found(verify(runner, db, 1)) == [("changed", "p1", 5, row["position"])]


def test_a_modified_link_is_found(runner, db):
    row = rows(db)[("p2", 2)]
    other = row["chain"][:-1] + ("1" if row["chain"].endswith("0") else "0")
    tamper(db, ("UPDATE mar_index SET chain=? WHERE chain=?", (other, row["chain"])))
    # the changed link fails, and so does the next one, built on the original
    assert found(verify(runner, db, 1)) == [("changed", "p2", 2, row["position"]),
                                            ("changed", "p2", 3, rows(db)[("p2", 3)]["position"])]


# --- deleted ------------------------------------------------------------------------------------


def test_a_deleted_event_is_found(runner, db):
    r = rows(db)
    tamper(db, ("DELETE FROM stored_events WHERE rowid=?", (r[("p1", 3)]["position"],)),
           ("DELETE FROM mar_index WHERE chain=?", (r[("p1", 3)]["chain"],)))
    report = verify(runner, db, 1)
    assert found(report) == [("missing", "p1", 3, None)]
    assert report["breaks"][0]["detail"].endswith(
        f"(between positions {r[('p1', 2)]['position']} and {r[('p1', 4)]['position']})")


def test_an_event_row_deleted_without_its_index_row_is_found(runner, db):
    r = rows(db)
    tamper(db, ("DELETE FROM stored_events WHERE rowid=?", (r[("p1", 3)]["position"],)))
    # the next link still holds against the index row left behind: one break only
    assert found(verify(runner, db, 1)) == [("event-deleted", "p1", 3, None)]


def test_a_deleted_index_row_is_found(runner, db):
    r = rows(db)
    tamper(db, ("DELETE FROM mar_index WHERE chain=?", (r[("p2", 4)]["chain"],)))
    assert found(verify(runner, db, 1)) == [("unindexed", "p2", 4, r[("p2", 4)]["position"])]


def test_the_last_event_of_a_stream_deleted_with_its_index_row_needs_an_anchor(runner, db, tmp_path):
    anchor = tmp_path / "anchor.json"
    anchor.write_text(run(runner, db, "verify", "--json").stdout)
    r = rows(db)
    tamper(db, ("DELETE FROM stored_events WHERE rowid=?", (r[("p2", 5)]["position"],)),
           ("DELETE FROM mar_index WHERE chain=?", (r[("p2", 5)]["chain"],)))
    # inside the store nothing is left to disagree (decision 0003, limits) ...
    assert verify(runner, db, 0)["events"] == 11
    # ... the head anchored outside it is gone
    report = verify(runner, db, 1, "--anchor", str(anchor))
    assert found(report) == [("anchor", "p2", 5, None)]
    assert "now ends at version 4" in report["breaks"][0]["detail"]


# --- reordered ----------------------------------------------------------------------------------


def test_swapped_contents_are_found(runner, db):
    r = rows(db)
    a, b = r[("p1", 5)], r[("p1", 6)]
    tamper(db, ("UPDATE stored_events SET state=? WHERE rowid=?", (b["state"], a["position"])),
           ("UPDATE stored_events SET state=? WHERE rowid=?", (a["state"], b["position"])))
    assert found(verify(runner, db, 1)) == [("changed", "p1", 5, a["position"]), ("changed", "p1", 6, b["position"])]


def test_reordered_notification_ids_are_found(runner, db):
    r = rows(db)
    a, b = r[("p1", 2)]["position"], r[("p1", 3)]["position"]
    spare = max(x["position"] for x in r.values()) + 100
    tamper(db, ("UPDATE stored_events SET rowid=? WHERE rowid=?", (spare, a)),
           ("UPDATE stored_events SET rowid=? WHERE rowid=?", (a, b)),
           ("UPDATE stored_events SET rowid=? WHERE rowid=?", (b, spare)))
    # the links hold (they do not cover the notification id); the order within the stream does not
    assert found(verify(runner, db, 1)) == [("out-of-order", "p1", 3, a)]


def test_swapped_versions_are_found(runner, db):
    r = rows(db)
    stream = r[("p1", 5)]["stream"]
    steps = [("UPDATE {} SET originator_version=-1 WHERE originator_id=? AND originator_version=5"),
             ("UPDATE {} SET originator_version=5 WHERE originator_id=? AND originator_version=6"),
             ("UPDATE {} SET originator_version=6 WHERE originator_id=? AND originator_version=-1")]
    tamper(db, *[(sql.format(t), (stream,)) for sql in steps for t in ("stored_events", "mar_index")])
    # the second dose now claims version 5, and was stored after the first
    assert found(verify(runner, db, 1)) == [
        ("changed", "p1", 5, r[("p1", 6)]["position"]),
        ("changed", "p1", 6, r[("p1", 5)]["position"]),
        ("out-of-order", "p1", 6, r[("p1", 5)]["position"]),
        ("changed", "p1", 7, r[("p1", 7)]["position"]),  # built on the link now at version 6
    ]


# --- inserted -----------------------------------------------------------------------------------


def _insert(db, stream: str, version: int, state: bytes, event_id: str, chain: str) -> None:
    tamper(db, ("INSERT INTO stored_events VALUES (?,?,?,?)", (stream, version, "mar.events:DoseGiven", state)),
           ("INSERT INTO mar_index VALUES (?,?,?,?,?)", (stream, version, event_id, "0" * 64, chain)))


def test_an_event_appended_with_a_made_up_link_is_found(runner, db):
    r = rows(db)
    _insert(db, r[("p1", 6)]["stream"], 8, r[("p1", 6)]["state"], "p1/dose/3", r[("p1", 7)]["chain"])
    assert found(verify(runner, db, 1)) == [("changed", "p1", 8, rows(db)[("p1", 8)]["position"])]


def test_an_event_inserted_in_the_middle_is_found(runner, db):
    r = rows(db)
    stream = r[("p1", 5)]["stream"]
    shift = "UPDATE {} SET originator_version = -(originator_version + 1) WHERE originator_id=? AND originator_version >= 5"
    back = "UPDATE {} SET originator_version = -originator_version WHERE originator_id=? AND originator_version < 0"
    tamper(db, *[(sql.format(t), (stream,)) for sql in (shift, back) for t in ("stored_events", "mar_index")])
    # the inserted row even carries a correct link to the row before it
    state = dose_80(r[("p1", 5)]["state"]).replace(b"p1/dose/1", b"p1/dose/X")
    link = chain_hash(r[("p1", 4)]["chain"], stream, 5, "mar.events:DoseGiven", state, None, "p1/dose/X", "0" * 64)
    _insert(db, stream, 5, state, "p1/dose/X", link)
    assert found(verify(runner, db, 1)) == [
        ("changed", "p1", 6, r[("p1", 5)]["position"]),        # the old version 5: built on another link
        ("out-of-order", "p1", 6, r[("p1", 5)]["position"]),   # and stored before the row now in front of it
        ("changed", "p1", 7, r[("p1", 6)]["position"]),        # every shifted row: its version is in its link
        ("changed", "p1", 8, r[("p1", 7)]["position"]),
    ]


def test_an_event_row_inserted_without_index_row_is_found(runner, db):
    r = rows(db)
    tamper(db, ("INSERT INTO stored_events VALUES (?,?,?,?)",
                (r[("p2", 5)]["stream"], 6, "mar.events:InfusionRateChanged", r[("p2", 5)]["state"])))
    assert found(verify(runner, db, 1)) == [("unindexed", "p2", 6, rows_all_positions(db)[-1])]


def rows_all_positions(db) -> list[int]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return [x for (x,) in con.execute("SELECT rowid FROM stored_events ORDER BY rowid")]
    finally:
        con.close()


# --- forgers who recompute the links ------------------------------------------------------------


def _rewrite_from(db, patient: str, version: int, key: bytes | None) -> None:
    """Change one event and recompute every later link of its stream, as a forger with the
    algorithm (it is open source) and the file, but with `key` only if given, would."""
    r = rows(db)
    con_rows = sorted(v for (p, v) in r if p == patient)
    prev = r[(patient, version - 1)]["chain"] if version > 1 else ""
    statements = []
    for v in con_rows[version - 1:]:
        row = r[(patient, v)]
        state = forged(row["state"]) if v == version else row["state"]
        digest = _digest(db, row["chain"])
        link = chain_hash(prev, row["stream"], v, _topic(db, row["position"]), state, key, row["event_id"], digest)
        statements += [("UPDATE stored_events SET state=? WHERE rowid=?", (state, row["position"])),
                       ("UPDATE mar_index SET chain=? WHERE chain=?", (link, row["chain"]))]
        prev = link
    tamper(db, *statements)


def forged(state: bytes) -> bytes:
    changed = state.replace(b'"recorded_by":"', b'"recorded_by":"forged.')
    assert changed != state
    return changed


def _digest(db, chain: str) -> str:
    return _one(db, "SELECT digest FROM mar_index WHERE chain=?", chain)


def _topic(db, position: int) -> str:
    return _one(db, "SELECT topic FROM stored_events WHERE rowid=?", position)


def _one(db, sql, param):
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return con.execute(sql, (param,)).fetchone()[0]
    finally:
        con.close()


def test_without_a_key_a_recomputed_chain_passes_but_not_an_anchor(runner, db, tmp_path):
    anchor = tmp_path / "anchor.json"
    anchor.write_text(run(runner, db, "verify", "--json").stdout)
    _rewrite_from(db, "p1", 5, key=None)
    assert verify(runner, db, 0)["ok"] is True  # the limit of an unkeyed chain (decision 0003)
    report = verify(runner, db, 1, "--anchor", str(anchor))
    assert found(report) == [("anchor", "p1", 7, rows(db)[("p1", 7)]["position"])]
    assert report["anchors_checked"] == 2


def test_in_keyed_mode_a_forger_without_the_key_is_caught(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("MAR_HMAC_KEY", KEY)
    db = make_store(runner, tmp_path)
    assert verify(runner, db, 0)["chain"] == "hmac-sha256"
    r = rows(db)
    assert all(x["chain"].startswith("hmac-sha256:") for x in r.values())
    _rewrite_from(db, "p1", 5, key=None)
    assert found(verify(runner, db, 1)) == [("changed", "p1", v, r[("p1", v)]["position"]) for v in (5, 6, 7)]


def test_a_keyed_store_is_not_verified_without_its_key(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("MAR_HMAC_KEY", KEY)
    db = make_store(runner, tmp_path)
    monkeypatch.delenv("MAR_HMAC_KEY")
    result = run(runner, db, "verify", code=2)
    assert result.stderr == "Error: this store was created in keyed mode: set MAR_HMAC_KEY to verify it\n"
    monkeypatch.setenv("MAR_HMAC_KEY", "another key")
    result = run(runner, db, "verify", code=2)
    assert result.stderr == "Error: MAR_HMAC_KEY is not this store's key: its key check does not match\n"


def test_a_keyed_store_rewritten_as_unkeyed_is_caught(runner, tmp_path, monkeypatch):
    """The forger also deletes the mode record and recomputes every link without a key."""
    monkeypatch.setenv("MAR_HMAC_KEY", KEY)
    db = make_store(runner, tmp_path)
    monkeypatch.delenv("MAR_HMAC_KEY")
    tamper(db, ("DELETE FROM mar_meta", ()))
    for patient in ("p1", "p2"):
        _rewrite_from(db, patient, 1, key=None)
    report = verify(runner, db, 1)  # without the key: the missing mode record is the break
    assert found(report) == [("mode", None, None, None)]
    monkeypatch.setenv("MAR_HMAC_KEY", KEY)
    report = verify(runner, db, 1)  # with the key: every rewritten link too
    assert report["breaks_total"] == 1 + 7 + 5


def test_keyed_store_refuses_writes_without_or_with_another_key(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("MAR_HMAC_KEY", KEY)
    db = make_store(runner, tmp_path)
    event = json.dumps({"type": "weight_recorded", "patient_id": "p1", "weight": {"value": 90, "unit": "kg"},
                        "effective_at": "2007-10-15T08:00:00-07:00"})
    monkeypatch.delenv("MAR_HMAC_KEY")
    result = run(runner, db, "record", "--json", event, code=1)
    assert result.stderr == ("Error: this store was created in keyed mode: set MAR_HMAC_KEY to write; "
                             "nothing was written\n")
    monkeypatch.setenv("MAR_HMAC_KEY", "another key")
    result = run(runner, db, "record", "--json", event, code=1)
    assert result.stderr == "Error: MAR_HMAC_KEY is not this store's key; nothing was written\n"
    monkeypatch.setenv("MAR_HMAC_KEY", KEY)
    run(runner, db, "record", "--json", event)
    assert verify(runner, db, 0)["events"] == 13


def test_an_unkeyed_store_refuses_writes_with_a_key(runner, db, monkeypatch):
    monkeypatch.setenv("MAR_HMAC_KEY", KEY)
    event = json.dumps({"type": "weight_recorded", "patient_id": "p1", "weight": {"value": 90, "unit": "kg"},
                        "effective_at": "2007-10-15T08:00:00-07:00"})
    result = run(runner, db, "record", "--json", event, code=1)
    assert result.stderr == ("Error: this store was created without a chain key: unset MAR_HMAC_KEY to write; "
                             "nothing was written\n")
    # and verifying it with a key does not pass on the plain links
    assert found(verify(runner, db, 1))[0] == ("mode", None, None, None)


def test_a_row_inserted_before_version_1_is_found(runner, db):
    r = rows(db)
    _insert(db, r[("p2", 1)]["stream"], 0, r[("p2", 1)]["state"], "p2/zero",
            chain_hash("", r[("p2", 1)]["stream"], 0, "mar.events:DoseGiven", r[("p2", 1)]["state"], None,
                       "p2/zero", "0" * 64))
    report = verify(runner, db, 1)
    assert [(k, p, v) for k, p, v, _ in found(report)] == [
        ("changed", "p2", 0), ("changed", "p2", 1), ("out-of-order", "p2", 1)]
    assert report["breaks"][0]["detail"] == "version 0 cannot exist: stream versions start at 1"


def test_verify_never_creates_a_store(runner, tmp_path):
    result = run(runner, tmp_path / "typo.db", "verify", code=1)
    assert result.stderr == f"Error: no store at {tmp_path / 'typo.db'} (read-only mode does not create one)\n"
    assert not (tmp_path / "typo.db").exists()


def test_verify_of_a_file_that_is_not_a_store(runner, tmp_path):
    import sqlite3

    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE notes (text)")
    con.commit()
    con.close()
    result = run(runner, other, "verify", code=1)
    assert result.stderr == f"Error: cannot read {other} as a mar store: no such table: mar_index\n"
    (tmp_path / "empty.db").write_bytes(b"")
    result = run(runner, tmp_path / "empty.db", "verify", code=1)
    assert result.stderr.startswith(f"Error: cannot open store {tmp_path / 'empty.db'}: ")


def test_dropped_triggers_are_reported(runner, db):
    r = rows(db)
    tamper(db, ("UPDATE stored_events SET state=? WHERE rowid=?", (dose_80(r[("p1", 5)]["state"]), r[("p1", 5)]["position"])),
           restore=False)
    report = verify(runner, db, 1)
    assert found(report) == [("unprotected", None, None, None), ("changed", "p1", 5, r[("p1", 5)]["position"])]
    assert report["breaks"][0]["detail"] == (
        "append-only triggers missing: stored_events_no_update, stored_events_no_delete, mar_index_no_update, "
        "mar_index_no_delete, mar_meta_no_update, mar_meta_no_delete (dropped, so that rows could be changed "
        "or deleted)")
