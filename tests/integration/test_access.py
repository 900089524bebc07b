"""Attribution and access: a user for every write, read-only stores, private files, encryption
at rest with the library's cipher (wrong or missing keys are clear errors)."""
from __future__ import annotations

import base64
import json
import os
import sqlite3
from pathlib import Path

import pytest

from mar.errors import StoreError
from mar.store import EventStore

from .audit_case import P1, make_store, run, write_case

WEIGHT = json.dumps({"type": "weight_recorded", "patient_id": "p1", "weight": {"value": 90, "unit": "kg"},
                     "effective_at": "2007-10-15T08:00:00-07:00"})


def count(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM stored_events").fetchone()[0]
    finally:
        con.close()


# --- attribution --------------------------------------------------------------------------------


def test_every_write_needs_a_user(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("MAR_USER")
    db = tmp_path / "mar.db"
    case = write_case(tmp_path / "case.jsonl")
    for args in (("import", str(case)), ("record", "--json", WEIGHT)):
        result = run(runner, db, *args, code=1)
        assert result.stderr == "Error: who is writing? give --user or set MAR_USER; nothing was written\n"
    assert not db.exists() or count(db) == 0


def test_the_writing_user_is_stored_on_every_event(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("MAR_USER")
    db = tmp_path / "mar.db"
    run(runner, db, "--user", "interface.adt", "import", str(write_case(tmp_path / "case.jsonl", P1)))
    run(runner, db, "--user", "rn.kay", "record", "--json", WEIGHT)
    events = json.loads(run(runner, db, "history", "p1", "--json").stdout)
    assert [e["stored_by"] for e in events] == ["interface.adt"] * 7 + ["rn.kay"]
    # the source's charting user is kept beside the writing user; without one, the writer charted it
    assert [e["recorded_by"] for e in events] == [e["recorded_by"] for e in P1] + ["rn.kay"]


# --- read-only ----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "environment"])
def test_read_only_refuses_every_write(runner, tmp_path, monkeypatch, how):
    db = make_store(runner, tmp_path)
    before = count(db)
    flag = ["--read-only"] if how == "option" else []
    if how == "environment":
        monkeypatch.setenv("MAR_READ_ONLY", "1")
    message = "Error: the store is open read-only (--read-only or MAR_READ_ONLY=1); nothing was written\n"
    for args in (("import", str(tmp_path / "case.jsonl")), ("record", "--json", WEIGHT)):
        assert run(runner, db, *flag, *args, code=1).stderr == message
    assert count(db) == before
    # reading still works
    assert len(json.loads(run(runner, db, *flag, "history", "p1", "--json").stdout)) == 7
    run(runner, db, *flag, "verify")


def test_a_read_only_store_is_opened_read_only_by_sqlite(runner, tmp_path):
    db = make_store(runner, tmp_path)
    with EventStore(str(db), read_only=True) as store:
        with pytest.raises(Exception, match="readonly database"):
            with store.recorder.datastore.transaction(commit=True) as c:
                c.execute("INSERT INTO mar_meta VALUES ('x', 'y')")
    assert count(db) == 12


def test_read_only_does_not_create_a_store(runner, tmp_path):
    result = run(runner, tmp_path / "none.db", "--read-only", "history", "p1", code=1)
    assert result.stderr == f"Error: no store at {tmp_path / 'none.db'} (read-only mode does not create one)\n"
    assert not (tmp_path / "none.db").exists()


# --- file permissions ---------------------------------------------------------------------------


def modes(db: Path) -> dict[str, str]:
    return {p.name: oct(p.stat().st_mode & 0o777)
            for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()}


def test_store_files_are_private_even_under_a_lax_umask(runner, tmp_path):
    old = os.umask(0o002)
    try:
        db = make_store(runner, tmp_path)
        with EventStore(str(db)) as store:  # open: the -wal and -shm files exist now
            store.stream("p1")
            assert set(modes(db)) == {"mar.db", "mar.db-wal", "mar.db-shm"}
            assert set(modes(db).values()) == {"0o600"}
        # a read-only reader leaves its -wal and -shm behind: private too
        run(runner, db, "--read-only", "history", "p1")
        assert set(modes(db).values()) == {"0o600"}
        # and so is an export, which holds the whole record in clear
        run(runner, db, "export", "-o", str(tmp_path / "out.jsonl"))
        assert oct((tmp_path / "out.jsonl").stat().st_mode & 0o777) == "0o600"
        assert os.umask(0o002) == 0o002  # the umask is given back
    finally:
        os.umask(old)


# --- encryption at rest -------------------------------------------------------------------------


def key(runner) -> str:
    return run(runner, Path("unused.db"), "keygen").stdout.strip()


def test_keygen_prints_a_new_aes_256_key(runner):
    a, b = key(runner), key(runner)
    assert a != b
    assert len(base64.b64decode(a, validate=True)) == 32


def raw_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


def test_the_stored_state_is_unreadable_without_the_key(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("MAR_CIPHER_KEY", key(runner))
    db = make_store(runner, tmp_path)
    with EventStore(str(db)) as store:  # also while open: nothing in clear in the -wal either
        store.load_chart("p1")
        data = raw_bytes(db)
    for word in (b"methadone", b"ketamine", b"dr.kim", b"4 West", b"charted on the wrong patient", b"America/"):
        assert word not in data, word
    # the same record stored without a key: in clear (the check above can fail)
    monkeypatch.delenv("MAR_CIPHER_KEY")
    (tmp_path / "plain").mkdir()
    plain = make_store(runner, tmp_path / "plain")
    assert all(w in plain.read_bytes() for w in (b"methadone", b"ketamine", b"dr.kim"))


def test_with_the_key_the_record_reads_back(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("MAR_CIPHER_KEY", key(runner))
    db = make_store(runner, tmp_path)
    events = json.loads(run(runner, db, "history", "p1", "--json").stdout)
    assert [e["type"] for e in events] == [e["type"] for e in P1]
    assert events[3]["drug"] == "methadone"
    run(runner, db, "record", "--json", WEIGHT)


def test_wrong_or_missing_keys_are_clear_errors(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("MAR_CIPHER_KEY", key(runner))
    db = make_store(runner, tmp_path)

    monkeypatch.setenv("MAR_CIPHER_KEY", key(runner))
    for args in (("history", "p1"), ("record", "--json", WEIGHT), ("export",)):
        result = run(runner, db, *args, code=1)
        assert result.stderr == "Error: MAR_CIPHER_KEY is not this store's key: its events cannot be decrypted\n"

    monkeypatch.delenv("MAR_CIPHER_KEY")
    result = run(runner, db, "history", "p1", code=1)
    assert result.stderr == ("Error: a stored event is not readable JSON: the store is probably encrypted "
                             "(set MAR_CIPHER_KEY)\n")
    result = run(runner, db, "record", "--json", WEIGHT, code=1)  # p1's chart cannot be read
    assert result.stderr == ("Error: a stored event is not readable JSON: the store is probably encrypted "
                             "(set MAR_CIPHER_KEY)\n")
    assert count(db) == 12

    monkeypatch.setenv("MAR_CIPHER_KEY", "not base64!")
    result = run(runner, db, "history", "p1", code=1)
    assert result.stderr.startswith("Error: MAR_CIPHER_KEY is not a usable key (")
    assert result.stderr.endswith("make one with `mar keygen`\n")
    monkeypatch.setenv("MAR_CIPHER_KEY", base64.b64encode(b"too short").decode())
    assert run(runner, db, "history", "p1", code=1).stderr.startswith("Error: MAR_CIPHER_KEY is not a usable key (")


def test_a_key_for_a_store_that_is_not_encrypted_is_refused(runner, tmp_path, monkeypatch):
    db = make_store(runner, tmp_path)
    monkeypatch.setenv("MAR_CIPHER_KEY", key(runner))
    result = run(runner, db, "history", "p1", code=1)
    assert result.stderr == "Error: this store is not encrypted, but MAR_CIPHER_KEY is set: unset it to use this store\n"


def test_an_encrypted_store_refuses_clear_text_writes(runner, tmp_path, monkeypatch):
    """A new patient needs no decryption to validate; the write must still not go in clear."""
    monkeypatch.setenv("MAR_CIPHER_KEY", key(runner))
    db = make_store(runner, tmp_path)
    monkeypatch.delenv("MAR_CIPHER_KEY")
    new_patient = json.dumps({"type": "patient_registered", "patient_id": "p9", "timezone": "UTC",
                              "effective_at": "2007-10-15T08:00:00-07:00"})
    result = run(runner, db, "record", "--json", new_patient, code=1)
    assert result.stderr == "Error: this store is encrypted: set MAR_CIPHER_KEY to write; nothing was written\n"
    assert count(db) == 12


def test_an_encrypted_store_is_verified_without_its_cipher_key(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("MAR_CIPHER_KEY", key(runner))
    db = make_store(runner, tmp_path)
    monkeypatch.delenv("MAR_CIPHER_KEY")
    report = json.loads(run(runner, db, "verify", "--json").stdout)
    assert (report["ok"], report["events"]) == (True, 12)
    assert {h["patient_id"] for h in report["heads"]} == {None}  # the auditor cannot read the record


def test_the_library_error_is_caught_in_the_store(tmp_path, monkeypatch, runner):
    monkeypatch.setenv("MAR_CIPHER_KEY", key(runner))
    db = make_store(runner, tmp_path)
    monkeypatch.setenv("MAR_CIPHER_KEY", key(runner))
    with pytest.raises(StoreError, match="not this store's key"):
        EventStore(str(db))


def test_reading_does_not_wait_for_a_writer(runner, tmp_path):
    """Opening an existing store writes nothing: a long import holding the write lock does
    not hold up `mar history` or `mar verify`."""
    import time

    db = make_store(runner, tmp_path)
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        t0 = time.perf_counter()
        run(runner, db, "history", "p1")
        run(runner, db, "verify")
        assert time.perf_counter() - t0 < 5  # the store's lock timeout is 30 s
    finally:
        writer.execute("ROLLBACK")
        writer.close()
