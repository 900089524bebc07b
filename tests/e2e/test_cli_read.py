"""mar regimen, mar totals, mar project, mar mme-tables through click's CliRunner."""
from __future__ import annotations

import json

import pytest

from cli.main import cli

PATIENT = "p1"


def e(event_type: str, at: str, **fields) -> dict:
    return {"type": event_type, "patient_id": PATIENT, "effective_at": at, **fields}


def q(v, unit):
    return {"value": v, "unit": unit}


# US daylight saving time ended on 2020-11-01: a 25-hour day in Los Angeles.
EVENTS = [
    e("patient_registered", "2020-10-31T08:00:00-07:00", timezone="America/Los_Angeles"),
    e("weight_recorded", "2020-10-31T08:00:00-07:00", weight=q(80, "kg")),
    e("admitted", "2020-10-31T09:00:00-07:00", location="ward 5"),
    e("medication_ordered", "2020-10-31T22:00:00-07:00", order_id="hm", drug="hydromorphone", route="iv",
      dosing={"form": "infusion", "rate": q(2, "mg/h")}, prescriber="dr.a", indication="cancer pain"),
    e("medication_ordered", "2020-10-31T22:00:00-07:00", order_id="oxy", drug="oxycodone", route="po",
      dosing={"form": "as_needed", "dose": q(10, "mg"), "frequency": "q4h"}, prescriber="dr.a"),
    e("dose_given", "2020-11-01T08:00:00-08:00", order_id="oxy", dose=q(10, "mg"), route="po", kind="as_needed"),
    e("medication_ordered", "2020-11-01T10:00:00-08:00", order_id="ket", drug="ketamine", route="iv",
      dosing={"form": "infusion", "rate": q(50, "mcg/kg/h")}, prescriber="dr.b"),
    e("order_discontinued", "2020-11-01T22:00:00-08:00", order_id="ket", reason="pain controlled"),
    e("order_discontinued", "2020-11-02T00:00:00-08:00", order_id="hm", reason="switched to oral"),
]


@pytest.fixture
def db(tmp_path, runner):
    path = str(tmp_path / "ward.db")
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in EVENTS) + "\n")
    result = runner.invoke(cli, ["--db", path, "import", str(src)])
    assert result.exit_code == 0, result.output
    return path


def run(runner, db, *args):
    result = runner.invoke(cli, ["--db", db, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_totals_json_on_a_25_hour_day(runner, db):
    out = json.loads(run(runner, db, "totals", PATIENT, "--json"))
    assert out == {
        "patient_id": "p1", "timezone": "America/Los_Angeles", "mme_table": "cdc-2022",
        "mme_table_edition": "2022-11", "by": "day", "from": None, "to": None,
        "days": [
            {"date": "2020-10-31", "mme": 80,
             "drugs": [{"drug": "hydromorphone", "route": "iv", "amount": 4, "unit": "mg", "mme": 80}]},
            {"date": "2020-11-01", "mme": 1015,
             "drugs": [{"drug": "hydromorphone", "route": "iv", "amount": 50, "unit": "mg", "mme": 1000},
                       {"drug": "ketamine", "route": "iv", "amount": 48, "unit": "mg", "mme": None},
                       {"drug": "oxycodone", "route": "po", "amount": 10, "unit": "mg", "mme": 15}]},
        ],
    }


def test_totals_text(runner, db):
    assert run(runner, db, "totals", PATIENT, "--from", "2020-11-01") == (
        "p1: amounts per local day (America/Los_Angeles), MME table cdc-2022 (2022-11)\n"
        "2020-11-01  MME 1015\n"
        "  hydromorphone   iv             50 mg  MME 1000\n"
        "  ketamine        iv             48 mg\n"
        "  oxycodone       po             10 mg  MME 15\n"
    )


def test_totals_by_hour_repeats_the_1_oclock_hour(runner, db):
    out = json.loads(run(runner, db, "totals", PATIENT, "--by", "hour", "--from", "2020-11-01", "--to",
                         "2020-11-01", "--json"))
    assert len(out["days"]) == 25 and out["by"] == "hour"
    ones = [h for h in out["days"] if h["hour"] == 1]
    assert [h["start"] for h in ones] == ["2020-11-01T01:00:00-07:00", "2020-11-01T01:00:00-08:00"]
    eight = next(h for h in out["days"] if h["hour"] == 8)
    assert eight["drugs"] == [
        {"drug": "hydromorphone", "route": "iv", "amount": 2, "unit": "mg", "mme": 40},
        {"drug": "oxycodone", "route": "po", "amount": 10, "unit": "mg", "mme": 15}]


def test_totals_at_a_clinical_time_and_another_table(runner, db):
    out = json.loads(run(runner, db, "totals", PATIENT, "--at", "2020-11-01T12:00:00", "--mme-table",
                         "cdc-2022-nci", "--json"))
    assert out["at"] == "2020-11-01T12:00:00-08:00" and out["mme_table"] == "cdc-2022-nci"
    nov1 = out["days"][1]
    # 00:00-12:00 is 13 hours of hydromorphone on this day; ketamine from 10:00
    assert [(x["drug"], x["amount"], x["mme"]) for x in nov1["drugs"]] == [
        ("hydromorphone", 26, 390), ("ketamine", 8, None), ("oxycodone", 10, 15)]


def test_regimen_json(runner, db):
    out = json.loads(run(runner, db, "regimen", PATIENT, "--at", "2020-11-01T12:00:00-08:00", "--json"))
    assert out["patient_id"] == "p1" and out["at"] == "2020-11-01T12:00:00-08:00"
    by_drug = {m["drug"]: m for m in out["medications"]}
    assert list(by_drug) == ["hydromorphone", "ketamine", "oxycodone"]
    ket = by_drug["ketamine"]
    assert {k: ket[k] for k in ("order_id", "route", "dose", "unit", "frequency", "rate", "rate_unit", "as_needed",
                                "status", "started_at", "rate_mg_per_h", "weight_kg")} == {
        "order_id": "ket", "route": "iv", "dose": None, "unit": None, "frequency": None, "rate": 50,
        "rate_unit": "mcg/kg/h", "as_needed": False, "status": "active", "started_at": "2020-11-01T10:00:00-08:00",
        "rate_mg_per_h": 4, "weight_kg": 80}
    oxy = by_drug["oxycodone"]
    assert (oxy["dose"], oxy["unit"], oxy["frequency"], oxy["as_needed"]) == (10, "mg", "q4h", True)


def test_regimen_text(runner, db):
    assert run(runner, db, "regimen", PATIENT, "--at", "2020-11-01T23:00:00-08:00") == (
        "p1: regimen at 2020-11-01T23:00:00-08:00\n"
        "  hydromorphone iv infusion 2 mg/h  [active; order hm; since 2020-10-31T22:00:00-07:00]  for cancer pain\n"
        "  oxycodone po 10 mg q4h as needed  [active; order oxy; since 2020-10-31T22:00:00-07:00]\n"
    )
    assert run(runner, db, "regimen", PATIENT, "--at", "2020-10-31T21:00:00-07:00") == (
        "p1: regimen at 2020-10-31T21:00:00-07:00\n  no active medication\n")


def test_regimen_known_at_leaves_out_what_was_charted_later(runner, db, tmp_path):
    late = e("medication_ordered", "2020-11-01T11:00:00-08:00", order_id="mem", drug="memantine", route="po",
             dosing={"form": "scheduled", "dose": q(5, "mg"), "frequency": "bid"}, prescriber="dr.c",
             recorded_at="2020-11-01T18:00:00-08:00")
    run(runner, db, "record", "--json", json.dumps(late))
    at = ["--at", "2020-11-01T12:00:00-08:00", "--json"]
    now = json.loads(run(runner, db, "regimen", PATIENT, *at))
    then = json.loads(run(runner, db, "regimen", PATIENT, *at, "--known-at", "2020-11-01T17:00:00-08:00"))
    assert "memantine" in {m["drug"] for m in now["medications"]}
    assert "memantine" not in {m["drug"] for m in then["medications"]}
    assert then["known_at"] == "2020-11-01T17:00:00-08:00"


@pytest.mark.parametrize("args, message", [
    (["regimen", "nobody"], "Error: no patient 'nobody' in this store"),
    (["regimen", PATIENT, "--at", "yesterday"], "Error: --at='yesterday': not an ISO 8601 time"),
    (["totals", PATIENT, "--from", "11/01/2020"], "Error: --from='11/01/2020': not a date (YYYY-MM-DD"),
    (["totals", PATIENT, "--from", "2020-11-02", "--to", "2020-11-01"], "Error: --to=2020-11-01 is before --from=2020-11-02"),
    (["totals", PATIENT, "--mme-table", "who"], "Error: no MME table 'who'; known: cdc-2016, cdc-2022, cdc-2022-nci"),
])
def test_clear_errors(runner, db, args, message):
    result = runner.invoke(cli, ["--db", db, *args])
    assert result.exit_code == 1
    assert result.output.startswith(message), result.output


def test_project_and_rebuild(runner, db):
    out = run(runner, db, "project")
    assert out.startswith(db.replace(".db", ".projections.db") + ": caught up with 9 events in ")
    assert "(positions: alerts 9, events 9, medication 9)" in out
    assert ": caught up with 0 events in " in run(runner, db, "project")
    assert ": rebuilt from 9 events in " in run(runner, db, "project", "--rebuild")


def test_mme_tables_lists_the_shipped_tables(runner):
    out = runner.invoke(cli, ["mme-tables"]).output
    assert out.splitlines()[1].startswith("cdc-2022 (default): CDC 2022 oral MME factors")
    listed = json.loads(runner.invoke(cli, ["mme-tables", "--json"]).output)
    assert {t["name"] for t in listed} == {"cdc-2016", "cdc-2022", "cdc-2022-nci"}


@pytest.mark.parametrize("command", ["regimen", "totals", "project", "mme-tables"])
def test_every_read_command_has_help(runner, command):
    result = runner.invoke(cli, [command, "--help"])
    assert result.exit_code == 0 and len(result.output) > 200
