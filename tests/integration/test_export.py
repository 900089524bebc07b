"""`mar export`: the full stream with both times, recorder, digest and chain; and `mar import`
of an export: the same events in an empty store, nothing added twice, `mar verify` passes."""
from __future__ import annotations

import json

import pytest

from .audit_case import P1, P2, make_store, rows, run

STORE_OWN = ("stored_at", "stored_by", "chain")  # what the importing store writes anew


@pytest.fixture
def db(runner, tmp_path):
    # one event without idempotency key or recorded_at: its id is a content digest, its
    # recorded time the store's
    extra = {"type": "weight_recorded", "patient_id": "p2", "weight": {"value": 69.5, "unit": "kg"},
             "effective_at": "2007-10-14T19:00:00-07:00"}
    return make_store(runner, tmp_path, P1 + P2 + [extra])


def export(runner, db, *args) -> list[dict]:
    return [json.loads(line) for line in run(runner, db, "export", *args).stdout.splitlines()]


def without(lines: list[dict], fields=STORE_OWN) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in fields} for e in lines]


def test_each_line_carries_both_times_the_recorder_and_the_chain(runner, db):
    lines = export(runner, db)
    assert len(lines) == 13
    r = rows(db)
    for e in lines:
        assert {"effective_at", "recorded_at", "recorded_by", "stored_at", "stored_by", "event_id", "v",
                "version", "digest", "chain"} <= set(e)
        assert e["chain"] == r[(e["patient_id"], e["version"])]["chain"]
        assert e["stored_by"] == "test.user"
    assert [(e["patient_id"], e["version"]) for e in lines[:7]] == [("p1", v) for v in range(1, 8)]
    assert lines[6]["recorded_by"] == "rn.chief"
    last = lines[-1]
    assert last["event_id"].startswith("sha256:") and last["recorded_at"] == last["stored_at"]


def test_one_patient(runner, db):
    lines = export(runner, db, "p2")
    assert [(e["patient_id"], e["version"]) for e in lines] == [("p2", v) for v in range(1, 7)]
    assert run(runner, db, "export", "p9", code=1).stderr == "Error: no patient 'p9' in this store\n"


def test_to_a_file(runner, db, tmp_path):
    result = run(runner, db, "export", "-o", str(tmp_path / "x.jsonl"))
    assert (result.stdout, result.stderr) == ("", f"exported 13 events to {tmp_path / 'x.jsonl'}\n")
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 13


def test_an_export_imported_into_an_empty_store_gives_the_same_events(runner, db, tmp_path, monkeypatch):
    run(runner, db, "export", "-o", str(tmp_path / "x.jsonl"))
    copy = tmp_path / "copy.db"
    monkeypatch.setenv("MAR_USER", "restorer")
    result = run(runner, copy, "import", str(tmp_path / "x.jsonl"))
    assert result.stdout == f"{tmp_path / 'x.jsonl'}: 13 added, 0 already stored (2 patients changed)\n"
    first, second = export(runner, db), export(runner, copy)
    assert without(second) == without(first)
    assert {e["stored_by"] for e in second} == {"restorer"}
    assert json.loads(run(runner, copy, "verify", "--json").stdout)["ok"] is True
    # the correction still names its target
    assert json.loads(run(runner, copy, "history", "p1", "--json").stdout)[4]["entered_in_error_by"]["version"] == 7


def test_importing_an_export_again_adds_nothing(runner, db, tmp_path):
    run(runner, db, "export", "-o", str(tmp_path / "x.jsonl"))
    for store in (db, tmp_path / "copy.db", tmp_path / "copy.db"):
        run(runner, store, "import", str(tmp_path / "x.jsonl"))
    result = run(runner, db, "import", str(tmp_path / "x.jsonl"))
    assert result.stdout == f"{tmp_path / 'x.jsonl'}: 0 added, 13 already stored (0 patients changed)\n"
    assert len(export(runner, tmp_path / "copy.db")) == 13


def test_an_edited_export_line_is_not_taken_for_the_stored_event(runner, db, tmp_path):
    lines = export(runner, db)
    lines[4]["dose"]["value"] = 80  # same event id and digest, other content
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    result = run(runner, db, "import", str(tmp_path / "x.jsonl"), code=1)
    assert result.stderr == (f"Error: {tmp_path / 'x.jsonl'}: 1 problem, nothing written:\n"
                             "  line 5: idempotency_key='p1/dose/1': already used for an event with different content\n")


def test_store_fields_without_an_event_id_are_refused(runner, db, tmp_path):
    (tmp_path / "x.jsonl").write_text(json.dumps({**P1[0], "stored_by": "someone"}) + "\n")
    result = run(runner, tmp_path / "new.db", "import", str(tmp_path / "x.jsonl"), code=1)
    assert result.stderr == (f"Error: {tmp_path / 'x.jsonl'}: 1 problem, nothing written:\n"
                             "  line 1: stored_by='someone': a field the store adds: only lines written by "
                             "`mar export` (which carry event_id) may have it\n")


def test_an_event_type_version_from_a_newer_mar_is_refused(runner, db, tmp_path):
    lines = export(runner, db, "p1")
    lines[1]["v"] = 99
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    result = run(runner, tmp_path / "new.db", "import", str(tmp_path / "x.jsonl"), code=1)
    assert result.stderr == (f"Error: {tmp_path / 'x.jsonl'}: 1 problem, nothing written:\n"
                             "  line 2: v=99: unknown version of weight_recorded: this mar reads versions 1 to 1 "
                             "(written by a newer mar?)\n")


def test_an_export_line_must_agree_with_its_idempotency_key(runner, db, tmp_path):
    line = {**export(runner, db, "p1")[4], "event_id": "p1/dose/other"}
    (tmp_path / "x.jsonl").write_text(json.dumps(line) + "\n")
    result = run(runner, tmp_path / "new.db", "import", str(tmp_path / "x.jsonl"), code=1)
    assert "event_id='p1/dose/other': differs from the line's idempotency_key 'p1/dose/1'" in result.stderr


def test_an_encrypted_store_exports_and_reimports_under_another_key(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("MAR_CIPHER_KEY", run(runner, tmp_path / "x.db", "keygen").stdout.strip())
    db = make_store(runner, tmp_path, P1)
    run(runner, db, "export", "-o", str(tmp_path / "x.jsonl"))
    monkeypatch.setenv("MAR_CIPHER_KEY", run(runner, tmp_path / "x.db", "keygen").stdout.strip())
    copy = tmp_path / "copy.db"
    run(runner, copy, "import", str(tmp_path / "x.jsonl"))
    assert without(export(runner, copy)) == without([json.loads(x) for x in (tmp_path / "x.jsonl").read_text().splitlines()])
    run(runner, copy, "verify")
