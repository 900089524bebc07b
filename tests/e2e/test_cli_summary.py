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
    assert lines[lines.index("Alerts the record has since put right:") + 1:][:2] == [
        "  HIGH     2007-12-03 11:00  memantine (unreconciled_stop): resolved 2007-12-19 15:00: memantine ordered "
        "again 16 days after the discharge: memantine po 10 mg bid (order memantine-po-2)",
        "  HIGH     2007-10-15 10:40  lorazepam (opioid_benzodiazepine): resolved 2007-10-17 10:00: lorazepam and "
        "opioids no longer run together: lorazepam stopped (mild somnolence on ketamine and high-dose "
        "hydromorphone; anxiety settled)"]
    assert lines[-1].startswith("  MODERATE 2007-12-05 10:00  morphine, oxycodone (duplicate_opioid): resolved")


def test_summary_shows_ten_resolved_alerts_and_says_how_many_more(runner, tmp_path):
    at = "2007-10-{:02d}T{:02d}:00:00-07:00"
    rows = [{"type": "patient_registered", "patient_id": "p-1", "effective_at": at.format(1, 7),
             "timezone": "America/Los_Angeles"},
            {"type": "admitted", "patient_id": "p-1", "effective_at": at.format(1, 8), "location": "ward 7"},
            {"type": "medication_ordered", "patient_id": "p-1", "effective_at": at.format(1, 9), "order_id": "met",
             "drug": "methadone", "route": "po", "prescriber": "dr.a",
             "dosing": {"form": "scheduled", "dose": {"value": 10, "unit": "mg"}, "frequency": "tid"}}]
    for n in range(12):  # a benzodiazepine ordered beside the opioid, stopped an hour later: 12 times
        rows.append({"type": "medication_ordered", "patient_id": "p-1", "effective_at": at.format(2 + n, 10),
                     "order_id": f"lz-{n}", "drug": "lorazepam", "route": "po", "prescriber": "dr.a",
                     "dosing": {"form": "as_needed", "dose": {"value": 1, "unit": "mg"}, "frequency": "q6h"}})
        rows.append({"type": "order_discontinued", "patient_id": "p-1", "effective_at": at.format(2 + n, 11),
                     "order_id": f"lz-{n}", "reason": "settled"})
    path = tmp_path / "p1.jsonl"
    path.write_text("".join(json.dumps({**r, "idempotency_key": f"k{i}"}) + "\n" for i, r in enumerate(rows)))
    db = str(tmp_path / "p1.db")
    assert runner.invoke(cli, ["--db", db, "import", str(path)]).exit_code == 0
    lines = runner.invoke(cli, ["--db", db, "summary", "p-1"]).output.splitlines()
    shown = lines[lines.index("Alerts the record has since put right:") + 1:]
    assert len(shown) == 11 and all("(opioid_benzodiazepine): resolved" in line for line in shown[:10])
    assert shown[0].startswith("  HIGH     2007-10-13 10:00  lorazepam")  # the latest first
    assert shown[10] == "  ... and 2 more: mar alerts p-1 --status resolved"
    result = runner.invoke(cli, ["--db", db, "summary", "p-1", "--json"])
    assert len(json.loads(result.output)["resolved_alerts"]) == 12


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
