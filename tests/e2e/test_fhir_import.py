"""`mar import --format fhir` on a real SQLite store, through click's CliRunner."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import cli

DATA = Path(__file__).parent.parent / "data" / "fhir"
REGISTER = {"type": "patient_registered", "patient_id": "ref-001", "timezone": "America/Los_Angeles",
            "effective_at": "2007-10-15T08:00:00-07:00"}


@pytest.fixture
def mar(runner, tmp_path):
    db = str(tmp_path / "mar.db")

    def run(*args, ok: bool = True):
        result = runner.invoke(cli, ["--db", db, *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def write(tmp_path, name: str, data: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def history(mar, patient: str = "ref-001") -> list[dict]:
    return json.loads(mar("history", patient, "--json").output)


def test_import_round_trip_and_idempotent_re_import(mar):
    mar("record", "--json", json.dumps(REGISTER))
    path = str(DATA / "handwritten-r4b.json")
    assert mar("import", "--format", "fhir", path).output == \
        f"{path}: 8 added, 0 already stored (1 patient changed)\n"
    stored = history(mar)
    assert [e["type"] for e in stored] == [
        "patient_registered", "medication_ordered", "medication_ordered", "medication_ordered",
        "medication_ordered", "home_medication_recorded", "order_discontinued", "dose_given",
        "infusion_rate_changed"]
    dose = next(e for e in stored if e["type"] == "dose_given")
    assert (dose["event_id"], dose["order_id"], dose["dose"], dose["kind"], dose["recorded_by"]) == \
        ("fhir:MedicationAdministration/ma-oxycodone-1:given", "mr-oxycodone", {"value": 5.0, "unit": "mg"},
         "as_needed", "test.user")
    assert mar("import", "--format", "fhir", path).output == \
        f"{path}: 0 added, 8 already stored (0 patients changed)\n"
    # the R5 Bundle with the same content is the same facts
    r5 = str(DATA / "handwritten-r5.json")
    assert mar("import", "--format", "fhir", r5).output == f"{r5}: 0 added, 8 already stored (0 patients changed)\n"


def test_bundle_with_a_problem_writes_nothing(mar, tmp_path):
    mar("record", "--json", json.dumps(REGISTER))
    b = json.loads((DATA / "handwritten-r4b.json").read_text())
    b["entry"][2]["resource"]["dosageInstruction"][0]["timing"] = {"repeat": {"frequency": 5, "period": 1, "periodUnit": "d"}}
    path = write(tmp_path, "bad.json", b)
    result = mar("import", "--format", "fhir", path, ok=False)
    assert result.exit_code == 1
    assert result.output.splitlines()[:2] == [
        f"Error: {path}: 1 problem, nothing written:",
        "  Bundle.entry[2].resource(MedicationRequest/mr-oxycodone).dosageInstruction[0].timing.repeat="
        "'frequency=5, period=1, periodUnit=d': no exact catalog frequency for this timing; mar knows bid, daily, "
        "once, q12h, q1h, q24h, q2h, q3h, q4h, q6h, q8h, qhs, qid, tid"]
    assert [e["type"] for e in history(mar)] == ["patient_registered"]


def test_chart_problems_name_the_fhir_resource(mar):
    # nobody registered: every event is refused by the chart check, named by its resource
    path = str(DATA / "handwritten-r4b.json")
    result = mar("import", "--format", "fhir", path, ok=False)
    lines = result.output.splitlines()
    assert lines[0] == f"Error: {path}: 8 problems, nothing written:"
    assert lines[1] == ("  Bundle.entry[1].resource(MedicationRequest/mr-methadone) -> patient_id='ref-001': "
                        "no patient registered with this id (record patient_registered first)")
    assert all(".resource(" in line and " -> " in line for line in lines[1:])


def test_dose_against_an_order_imported_earlier(mar, tmp_path):
    mar("record", "--json", json.dumps(REGISTER))
    b = json.loads((DATA / "handwritten-r5.json").read_text())
    orders = dict(b, entry=[e for e in b["entry"] if e["resource"]["resourceType"] != "MedicationAdministration"])
    doses = dict(b, entry=[e for e in b["entry"] if e["resource"]["resourceType"] == "MedicationAdministration"])
    # a reference by fullUrl resolves only inside its Bundle: name the order by id instead
    doses["entry"][1]["resource"]["request"] = {"reference": "MedicationRequest/mr-fentanyl"}
    mar("import", "--format", "fhir", write(tmp_path, "orders.json", orders))
    out = mar("import", "--format", "fhir", write(tmp_path, "doses.json", doses)).output
    assert out.endswith(": 2 added, 0 already stored (1 patient changed)\n")
    kinds = {e["type"]: e.get("kind") for e in history(mar)}
    assert kinds["dose_given"] == "as_needed" and "infusion_rate_changed" in kinds


def test_administration_entered_in_error_corrects_the_imported_dose(mar, tmp_path):
    mar("record", "--json", json.dumps(REGISTER))
    mar("import", "--format", "fhir", str(DATA / "handwritten-r4b.json"))
    b = json.loads((DATA / "handwritten-r4b.json").read_text())
    ma = b["entry"][5]["resource"]
    ma["status"] = "entered-in-error"
    ma["statusReason"] = [{"text": "charted on the wrong patient"}]
    correction = dict(b, entry=[b["entry"][5]])
    mar("import", "--format", "fhir", write(tmp_path, "eie.json", correction))
    text = mar("history", "ref-001").output
    dose_line = next(line for line in text.splitlines() if "dose_given" in line)
    assert "ENTERED IN ERROR by test.user" in dose_line
    eie = next(e for e in history(mar) if e["type"] == "entered_in_error")
    assert (eie["target_event_id"], eie["reason"]) == \
        ("fhir:MedicationAdministration/ma-oxycodone-1:given", "charted on the wrong patient")


def test_official_entered_in_error_example_without_the_dose_it_corrects(mar, tmp_path):
    mar("record", "--json", json.dumps(dict(REGISTER, patient_id="pat1")))
    resource = json.loads((DATA / "hl7-r5-medicationadministration0303.json").read_text())
    path = write(tmp_path, "medadmin0303.json",
                 {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource}]})
    result = mar("import", "--format", "fhir", path, ok=False)
    assert result.output.splitlines()[1] == (
        "  Bundle.entry[0].resource(MedicationAdministration/medadmin0303) -> target_event_id="
        "'fhir:MedicationAdministration/medadmin0303:given': no event with this id for patient pat1")
    assert [e["type"] for e in history(mar, "pat1")] == ["patient_registered"]
