"""`mar summary`: the README's main job on the reference case."""
from __future__ import annotations

import json

from cli.main import cli
from cli.summary import same_day_runs
from tests.conftest import FIXTURE


def _imported(runner, tmp_path) -> str:
    db = str(tmp_path / "ref.db")
    result = runner.invoke(cli, ["--db", db, "import", FIXTURE])
    assert result.exit_code == 0, result.output
    return db


def test_summary_of_the_reference_case(runner, tmp_path):
    db = _imported(runner, tmp_path)
    result = runner.invoke(cli, ["--db", db, "summary", "ref-001"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:8] == [
        "Patient ref-001 (days in America/Los_Angeles)",
        "",
        "Course:",
        "  2007-10-14 00:20  admitted (Medical oncology ward)",
        "  2007-12-03 11:00  discharged (nursing home)",
        "  2007-12-19 14:00  readmitted (Medical oncology ward)",
        "  2007-12-26 11:00  discharged (nursing home)",
        "  2008-02-04 04:40  died",
    ]
    assert "Regimen at 2008-02-04 04:39 (just before death):" in lines
    regimen = lines[lines.index("Regimen at 2008-02-04 04:39 (just before death):") + 1:]
    assert regimen[1].startswith("  memantine po 10 mg bid  [active; discharge list;")
    assert any(line.startswith("  2007-10-15  MME    30804  ") and "hydromorphone iv 1512 mg" in line
               for line in lines)
    assert any(line.startswith("  2007-10-29 to 2007-12-02, each day:") for line in lines)
    omissions = [line for line in lines if "(unreconciled_stop)" in line]
    assert len(omissions) == 1 and "memantine" in omissions[0] and "2007-12-03 11:00" in omissions[0]


def test_summary_json_at_a_clinical_time(runner, tmp_path):
    db = _imported(runner, tmp_path)
    result = runner.invoke(cli, ["--db", db, "summary", "ref-001", "--at", "2007-12-09T12:00:00-08:00", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    drugs = {m["drug"] for m in data["regimen"]["medications"]}
    assert "memantine" not in drugs and "methadone" in drugs
    assert data["regimen_note"] is None
    assert data["died_at"].startswith("2008-02-04T04:40")


def test_same_day_runs_fold_only_consecutive_identical_days():
    a = [{"drug": "x", "amount": 1}]
    b = [{"drug": "x", "amount": 2}]
    days = [{"date": "2007-10-01", "drugs": a}, {"date": "2007-10-02", "drugs": a},
            {"date": "2007-10-04", "drugs": a}, {"date": "2007-10-05", "drugs": b}]
    assert [(f, l) for f, l, _ in same_day_runs(days)] == [
        ("2007-10-01", "2007-10-02"), ("2007-10-04", "2007-10-04"), ("2007-10-05", "2007-10-05")]


def test_summary_of_an_unknown_patient(runner, tmp_path):
    db = _imported(runner, tmp_path)
    result = runner.invoke(cli, ["--db", db, "summary", "nobody"])
    assert result.exit_code == 1
    assert "nobody" in result.output
