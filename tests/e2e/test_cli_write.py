"""The write-side commands through click's CliRunner: import, record, history, schema."""
from __future__ import annotations

import json

import click
import jsonschema
import pytest

from cli.main import cli
from mar.events import BY_TYPE

EVENTS = [
    {"type": "patient_registered", "patient_id": "ref-001", "timezone": "America/Los_Angeles",
     "effective_at": "2007-10-14T08:00:00-07:00", "recorded_by": "clerk.kim"},
    {"type": "admitted", "patient_id": "ref-001", "location": "oncology", "reason": "pain control",
     "effective_at": "2007-10-14T10:00:00-07:00", "recorded_at": "2007-10-14T10:05:00-07:00", "recorded_by": "rn.lee"},
    {"type": "medication_ordered", "patient_id": "ref-001", "order_id": "mem-1", "drug": "memantine", "route": "po",
     "prescriber": "dr.pain", "dosing": {"form": "scheduled", "dose": {"value": 5, "unit": "mg"}, "frequency": "bid"},
     "effective_at": "2007-10-20T09:00:00-07:00", "recorded_at": "2007-10-20T09:01:00-07:00", "recorded_by": "dr.pain"},
    {"type": "dose_given", "patient_id": "ref-001", "order_id": "mem-1", "dose": {"value": 5, "unit": "mg"},
     "route": "po", "kind": "scheduled", "effective_at": "2007-10-20T09:30:00-07:00",
     "recorded_at": "2007-10-20T13:00:00-07:00", "recorded_by": "rn.lee", "idempotency_key": "ref-001/dose/1"},
    {"type": "dose_not_given", "patient_id": "ref-001", "order_id": "mem-1", "status_reason": "refused",
     "effective_at": "2007-10-20T21:00:00-07:00", "recorded_at": "2007-10-20T21:05:00-07:00", "recorded_by": "rn.ortiz"},
]


def jsonl(events) -> str:
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)


@pytest.fixture
def here(runner, tmp_path, monkeypatch):
    """Run in a fresh directory holding f.jsonl, with the store at ./mar.db."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.jsonl").write_text(jsonl(EVENTS))
    return runner


def run(runner, *args, ok: bool = True, **kw):
    result = runner.invoke(cli, list(args), catch_exceptions=False, **kw)
    if ok:
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
    return result


# --- import -------------------------------------------------------------------------------


def test_import_summary(here):
    result = run(here, "import", "f.jsonl")
    assert result.stdout == "f.jsonl: 5 added, 0 already stored (1 patient changed)\n"


def test_reimport_adds_nothing(here):
    run(here, "import", "f.jsonl")
    result = run(here, "import", "f.jsonl")
    assert result.stdout == "f.jsonl: 0 added, 5 already stored (0 patients changed)\n"


def test_import_of_several_files_and_patients(here):
    other = [dict(e, patient_id="ref-002") for e in EVENTS[:2]]
    with open("g.jsonl", "w") as fh:
        fh.write(jsonl(other + [dict(EVENTS[0], patient_id="ref-003")]))
    result = run(here, "import", "f.jsonl", "g.jsonl")
    assert result.stdout == (
        "f.jsonl: 5 added, 0 already stored (1 patient changed)\n"
        "g.jsonl: 3 added, 0 already stored (2 patients changed)\n"
    )


def test_import_of_a_bad_file_reports_every_bad_line_and_writes_nothing(here):
    bad = [
        EVENTS[0],
        dict(EVENTS[1], effective_at="2007-10-14T10:00:00"),
        EVENTS[2],
        dict(EVENTS[3], dose={"value": 5, "unit": "mg/h"}),
        "",
        dict(EVENTS[4], order_id="mem-9"),
    ]
    with open("bad.jsonl", "w") as fh:
        fh.write(jsonl(bad))
    result = run(here, "import", "bad.jsonl", ok=False)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: bad.jsonl: 3 problems, nothing written:\n"
        "  line 2: effective_at='2007-10-14T10:00:00': not an ISO 8601 time with a UTC offset "
        "(for example 2007-10-15T14:00:00-07:00); naive times are refused\n"
        "  line 4: dose.unit='mg/h': unit 'mg/h' does not fit a dose; use one of mg, mcg, g\n"
        "  line 6: order_id='mem-9': no order with this id for patient ref-001\n"
    )
    history = run(here, "history", "ref-001", ok=False)
    assert (history.exit_code, history.stderr) == (1, "Error: no patient 'ref-001' in this store\n")


def test_import_stops_at_the_first_bad_file_and_keeps_the_good_ones_before_it(here):
    with open("bad.jsonl", "w") as fh:
        fh.write("{oops\n")
    result = run(here, "import", "f.jsonl", "bad.jsonl", ok=False)
    assert result.exit_code == 1
    assert result.stdout == "f.jsonl: 5 added, 0 already stored (1 patient changed)\n"
    assert result.stderr.startswith("Error: bad.jsonl: 1 problem, nothing written:\n  line 1: (line)='{oops': not valid JSON: ")


@pytest.mark.parametrize("document, said", [
    ({"resourceType": "Bundle", "type": "collection", "entry": []},
     "a FHIR Bundle over {n} lines, not one event per line: import it with --format fhir"),
    (EVENTS[:2], "one JSON document over {n} lines, not one event per line: write one mar event per line "
                 "(JSON Lines)"),
])
def test_a_json_document_over_many_lines_is_one_problem_not_one_per_line(here, document, said):
    with open("doc.json", "w") as fh:
        json.dump(document, fh, indent=2)
    lines = sum(1 for line in open("doc.json") if line.strip())
    result = run(here, "import", "doc.json", ok=False)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: doc.json: 1 problem, nothing written:\n"
                             f"  line 1: (file)='{lines} lines': the file is {said.format(n=lines)}\n")
    assert lines > 4


def test_same_key_different_content(here):
    run(here, "import", "f.jsonl")
    with open("changed.jsonl", "w") as fh:
        fh.write(jsonl([dict(EVENTS[3], dose={"value": 10, "unit": "mg"})]))
    result = run(here, "import", "changed.jsonl", ok=False)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: changed.jsonl: 1 problem, nothing written:\n"
        "  line 1: idempotency_key='ref-001/dose/1': already used for an event with different content\n"
    )


def test_import_of_a_missing_file(here):
    result = run(here, "import", "nope.jsonl", ok=False)
    assert result.exit_code == 2
    assert "File 'nope.jsonl' does not exist." in result.stderr


# --- record ---------------------------------------------------------------------------------


def test_record_json(here):
    run(here, "import", "f.jsonl")
    dose = dict(EVENTS[3], idempotency_key="ref-001/dose/2", effective_at="2007-10-20T21:30:00-07:00")
    del dose["recorded_at"], dose["recorded_by"]
    assert run(here, "record", "--json", json.dumps(dose)).stdout == "recorded dose_given\n"
    assert run(here, "record", "--json", json.dumps(dose)).stdout == "already stored; nothing written\n"
    last = json.loads(run(here, "history", "ref-001", "--json").stdout)[-1]
    assert (last["recorded_by"], last["stored_by"], last["event_id"]) == ("test.user", "test.user", "ref-001/dose/2")


def test_record_with_user_option(here, monkeypatch):
    monkeypatch.delenv("MAR_USER")
    run(here, "--user", "rn.kim", "record", "--json", json.dumps(EVENTS[0]))
    (e,) = json.loads(run(here, "history", "ref-001", "--json").stdout)
    assert (e["recorded_by"], e["stored_by"]) == ("clerk.kim", "rn.kim")


def test_record_a_bad_event(here):
    run(here, "import", "f.jsonl")
    bad = dict(EVENTS[3], idempotency_key="x", dose={"value": 10, "unit": "g"}, kind="pca_demand")
    result = run(here, "record", "--json", json.dumps(bad), ok=False)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: 2 problems, nothing written:\n"
        "  kind='pca_demand': a pca_demand dose does not fit a scheduled order\n"
        "  dose='10 g': implausible: above the catalog maximum single dose of memantine (28 mg); "
        "check the unit (mg vs mcg)\n"
    )


def test_record_json_that_is_not_json(here):
    result = run(here, "record", "--json", "dose 5 mg", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 1 problem, nothing written:\n  (line)='dose 5 mg': not valid JSON")


@pytest.mark.parametrize("args", [
    ["record", "--json", json.dumps(EVENTS[0])],
    ["import", "f.jsonl"],
])
def test_write_without_a_user(here, monkeypatch, args):
    monkeypatch.delenv("MAR_USER")
    result = run(here, *args, ok=False)
    assert result.exit_code == 1
    assert result.stderr == "Error: who is writing? give --user or set MAR_USER; nothing was written\n"


def test_write_with_an_empty_user(here, monkeypatch):
    monkeypatch.setenv("MAR_USER", "")
    result = run(here, "import", "f.jsonl", ok=False)
    assert result.stderr == "Error: who is writing? give --user or set MAR_USER; nothing was written\n"


def test_write_to_a_read_only_store(here):
    run(here, "import", "f.jsonl")
    result = run(here, "--read-only", "record", "--json", json.dumps(dict(EVENTS[0], patient_id="p2")), ok=False)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the store is open read-only (--read-only or MAR_READ_ONLY=1); nothing was written\n"
    )


def test_db_option_and_environment(here, monkeypatch):
    run(here, "--db", "elsewhere.db", "import", "f.jsonl")
    monkeypatch.setenv("MAR_DB", "elsewhere.db")
    assert run(here, "import", "f.jsonl").stdout == "f.jsonl: 0 added, 5 already stored (0 patients changed)\n"
    history = run(here, "--db", "mar.db", "history", "ref-001", ok=False)
    assert history.exit_code == 1


# --- history --------------------------------------------------------------------------------


def test_history_text(here):
    run(here, "import", "f.jsonl")
    stdout = run(here, "history", "ref-001").stdout
    lines = stdout.splitlines()
    assert len(lines) == 5
    assert lines[3] == (
        "    4  2007-10-20T09:30:00-07:00  rec 2007-10-20T13:00:00-07:00 by rn.lee  "
        "dose_given  scheduled 5 mg po (order mem-1)  LATE"
    )
    assert lines[1] == (
        "    2  2007-10-14T10:00:00-07:00  rec 2007-10-14T10:05:00-07:00 by rn.lee  admitted  oncology"
    )
    assert lines[4].endswith("by rn.ortiz  dose_not_given  order mem-1: refused")
    # without recorded_at the store's time is used: charted now, long after 2007
    assert lines[0].startswith("    1  2007-10-14T08:00:00-07:00  rec 20") and lines[0].endswith(
        "by clerk.kim  patient_registered  time zone America/Los_Angeles  LATE")


def test_history_marks_corrections(here):
    run(here, "import", "f.jsonl")
    correction = {"type": "entered_in_error", "patient_id": "ref-001", "target_event_id": "ref-001/dose/1",
                  "reason": "given to the wrong patient", "effective_at": "2007-10-20T14:00:00-07:00",
                  "recorded_by": "rn.chief"}
    run(here, "record", "--json", json.dumps(correction))
    lines = run(here, "history", "ref-001").stdout.splitlines()
    assert lines[3].endswith("(order mem-1)  LATE  ENTERED IN ERROR by rn.chief")
    assert "entered_in_error  corrects ref-001/dose/1 (given to the wrong patient)" in lines[5]


def test_history_json(here):
    run(here, "import", "f.jsonl")
    events = json.loads(run(here, "history", "ref-001", "--json").stdout)
    assert isinstance(events, list) and len(events) == 5
    for given, e in zip(EVENTS, events):
        assert {"type", "effective_at", "recorded_at", "recorded_by", "event_id", "stored_at", "stored_by"} <= set(e)
        assert (e["type"], e["effective_at"]) == (given["type"], given["effective_at"])
        assert e["recorded_by"] == given["recorded_by"]
    assert events[3]["recorded_at"] == "2007-10-20T13:00:00-07:00"
    assert events[3]["event_id"] == "ref-001/dose/1"
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]


def test_history_of_an_unknown_patient(here):
    run(here, "import", "f.jsonl")
    result = run(here, "history", "ref-999", ok=False)
    assert (result.exit_code, result.stderr) == (1, "Error: no patient 'ref-999' in this store\n")


# --- schema ---------------------------------------------------------------------------------


def test_schema_is_a_valid_json_schema_listing_every_type(here):
    schema = json.loads(run(here, "schema").stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == set(BY_TYPE)
    validator = jsonschema.Draft202012Validator(schema)
    for e in EVENTS:
        validator.validate(e)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(dict(EVENTS[3], dose={"value": 5, "unit": "mg/h"}))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(dict(EVENTS[3], kind="push"))


# --- help -----------------------------------------------------------------------------------


def _commands(group: click.Group, path=()):
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


@pytest.mark.parametrize("path,cmd", list(_commands(cli)), ids=lambda x: " ".join(x) if isinstance(x, tuple) else "")
def test_every_command_has_help(runner, path, cmd):
    assert (cmd.help or "").strip(), f"mar {' '.join(path)} has no help text"
    result = run(runner, *path, "--help")
    assert result.stdout.startswith(f"Usage: cli {' '.join(path)} ")
    # click re-wraps help text, so compare with white space folded
    assert " ".join(cmd.help.split())[:70] in " ".join(result.stdout.split())
    for param in cmd.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"mar {' '.join(path)} {param.opts[0]} has no help text"


def test_top_level_help_lists_the_write_commands(runner):
    stdout = run(runner, "--help").stdout
    for name in ("import", "record", "history", "schema"):
        assert f"  {name} " in stdout
