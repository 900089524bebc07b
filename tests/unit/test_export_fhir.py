"""`mar export --format fhir`: the reference case as one FHIR R5 Bundle, a Provenance per event."""
from __future__ import annotations

import json

import pytest

from cli.main import cli
from mar.export import export_events
from mar.export_fhir import STORED_EVENT, export_fhir
from mar.fhir_bundle import model_class
from mar.importing import import_file
from mar.store import EventStore

from ..conftest import FIXTURE


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("fhir") / "mar.db")
    with EventStore(db) as store:
        import_file(store, "importer", FIXTURE)
    with EventStore(db, read_only=True) as store:
        lines = list(export_events(store, "ref-001"))
        bundle = export_fhir(store, "ref-001")
    return db, lines, bundle


def resources(bundle, kind=None):
    return [e["resource"] for e in bundle["entry"] if kind is None or e["resource"]["resourceType"] == kind]


def stored(prov) -> dict:
    ext = next(x for x in prov["extension"] if x["url"] == STORED_EVENT)
    return {x["url"]: next(v for k, v in x.items() if k.startswith("value")) for x in ext["extension"]}


def by_url(bundle) -> dict:
    """fullUrl -> every version of that resource, in Bundle order."""
    out: dict = {}
    for e in bundle["entry"]:
        out.setdefault(e["fullUrl"], []).append(e["resource"])
    return out


def test_the_bundle_is_a_valid_r5_collection(case):
    _, lines, bundle = case
    model_class("R5", "Bundle").model_validate(bundle)
    assert bundle["type"] == "collection"
    assert bundle["meta"]["tag"][0]["code"] == "5.0.0"
    # the fixture has no acknowledgement: every event has a resource, then its Provenance
    assert len(bundle["entry"]) == 2 * len(lines) == 2 * 1431


def test_one_provenance_per_event_with_both_times_both_users_and_the_chain(case):
    _, lines, bundle = case
    provs = resources(bundle, "Provenance")
    assert len(provs) == len(lines)
    for line, prov in zip(lines, provs):
        assert prov["occurredDateTime"] == line["effective_at"]
        assert prov["recorded"] == line["recorded_at"]
        agents = {a["type"]["coding"][0]["code"]: a["who"]["identifier"]["value"] for a in prov["agent"]}
        assert agents == {"author": line["recorded_by"], "enterer": "importer"}
        assert stored(prov) == {"event-id": line["event_id"], "chain": line["chain"], "digest": line["digest"],
                                "stream-version": line["version"], "stored-at": line["stored_at"]}
        assert prov["activity"]["coding"][0]["code"] == line["type"]
    assert lines[0]["recorded_by"] == "rn.dunn" and lines[0]["chain"].startswith("sha256:")


def test_each_provenance_targets_the_resource_just_before_it(case):
    _, _, bundle = case
    entries = bundle["entry"]
    for before, prov in zip(entries[0::2], entries[1::2]):
        assert prov["resource"]["target"] == [{"reference": before["fullUrl"]}]


def test_the_memantine_order_and_its_doses(case):
    _, lines, bundle = case
    orders = [r for r in resources(bundle, "MedicationRequest") if r["identifier"][0]["value"] == "memantine-po-1"]
    first = orders[0]
    assert (first["status"], first["intent"], first["medication"]["concept"]["text"]) == ("active", "order", "memantine")
    assert first["effectiveDosePeriod"] == {"start": "2007-10-20T08:30:00-07:00"}
    assert first["authoredOn"] == "2007-10-20T08:35:00-07:00"
    dosage = first["dosageInstruction"][0]
    assert dosage["doseAndRate"] == [{"doseQuantity": {"value": 5, "unit": "mg", "system": "http://unitsofmeasure.org",
                                                       "code": "mg"}}]
    assert dosage["timing"] == {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}
    assert dosage["route"]["coding"][0]["code"] == "26643006"
    urls = {f"urn:uuid:{o['id']}" for o in orders}
    doses = [r for r in resources(bundle, "MedicationAdministration") if r["request"]["reference"] in urls]
    given = [e for e in lines if e["type"] == "dose_given" and e["order_id"] == "memantine-po-1"]
    assert len(doses) == len(given) > 10
    assert doses[0]["occurenceDateTime"] == "2007-10-20T09:00:00-07:00"
    assert doses[0]["recorded"] == "2007-10-20T09:02:00-07:00"
    assert doses[0]["performer"][0]["actor"]["reference"]["display"] == "rn.alder"
    assert doses[0]["dosage"]["dose"]["value"] == 5


def test_entered_in_error_is_a_new_version_of_the_target(case):
    _, _, bundle = case
    versions = by_url(bundle)
    voided = [r for r in resources(bundle) if r.get("status") == "entered-in-error"]
    assert len(voided) == 1
    first, second = versions[f"urn:uuid:{voided[0]['id']}"]
    assert (first["status"], first["meta"]["versionId"], second["meta"]["versionId"]) == ("completed", "1", "2")
    assert first["occurenceDateTime"] == "2007-11-09T19:27:00-08:00"
    assert second["note"][-1]["text"] == ("entered in error: duplicate: one oxycodone 30 mg dose was given "
                                          "and charted twice")
    correction = next(p for p in resources(bundle, "Provenance") if stored(p)["event-id"] == "ref-001/0979")
    assert correction["target"] == [{"reference": f"urn:uuid:{voided[0]['id']}"}]


def test_a_pca_order_is_its_two_instructions_and_reads_back_as_a_pca(case):
    from mar.catalog import default_catalog
    from mar.fhir_bundle import FhirProblems, read_bundle
    from mar.fhir_dosage import Reader

    _, lines, bundle = case
    pca = next(r for r in resources(bundle, "MedicationRequest") if r["identifier"][0]["value"] == "hm-pca-1")
    demand, basal = pca["dosageInstruction"]
    assert [d["method"]["coding"][0]["code"] for d in (demand, basal)] == ["pca-demand", "pca-basal"]
    assert basal["doseAndRate"][0]["rateQuantity"]["value"] == 1.2
    assert pca["note"] == [{"text": "home PCA settings on the hospital pump"}]  # the order's own note only
    problems = FhirProblems()
    parsed = read_bundle(bundle)
    read = Reader(parsed, default_catalog(), problems)
    facts = read.single_dosage(pca["dosageInstruction"], parsed.entries[0].path)
    ordered = next(e for e in lines
                   if e["type"] == "medication_ordered" and e["order_id"] == "hm-pca-1")
    assert problems.items == [] and read.dosing(facts) == ordered["dosing"]


def test_stays_weight_and_death(case):
    _, _, bundle = case
    stays = by_url(bundle)
    encounters = [v[-1] for v in stays.values() if v[-1]["resourceType"] == "Encounter"]
    assert [(e["status"], e["actualPeriod"].get("end")) for e in encounters] == [
        ("completed", "2007-12-03T11:00:00-08:00"), ("completed", "2007-12-26T11:00:00-08:00")]
    assert encounters[0]["admission"]["dischargeDisposition"]["text"] == "nursing home"
    weight = resources(bundle, "Observation")[0]
    assert weight["code"]["coding"][0]["code"] == "29463-7" and weight["valueQuantity"]["code"] == "kg"
    patient = resources(bundle, "Patient")[-1]
    assert (patient["meta"]["versionId"], patient["deceasedDateTime"]) == ("2", "2008-02-04T04:40:00-08:00")


def test_cli_writes_the_bundle_to_a_file(case, runner, tmp_path):
    db, lines, bundle = case
    out = tmp_path / "ref.json"
    result = runner.invoke(cli, ["--db", db, "export", "ref-001", "--format", "fhir", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"exported 1431 events (2862 resources) to {out}\n"
    written = json.loads(out.read_text())
    assert [e["fullUrl"] for e in written["entry"]] == [e["fullUrl"] for e in bundle["entry"]]
    assert out.stat().st_mode & 0o777 == 0o600


def test_an_unknown_patient_is_a_clear_error(case, runner):
    db, _, _ = case
    result = runner.invoke(cli, ["--db", db, "export", "nobody", "--format", "fhir"])
    assert (result.exit_code, result.stderr) == (1, "Error: no patient 'nobody' in this store\n")


def test_every_event_type_of_the_doc_examples(tmp_path):
    """docs/event-format.md's examples: one of each type, the acknowledgement a Provenance only."""
    from datetime import datetime

    from mar.recording import Recorder

    from .test_doc_examples import DOC, section_examples

    examples = section_examples(DOC.read_text())
    with EventStore(str(tmp_path / "doc.db")) as store:
        clock = lambda: datetime.fromisoformat("2008-03-01T00:00:00+00:00")  # noqa: E731
        Recorder(store, "doc.test", clock=clock).record([(line, e) for line, _, e in examples])
        bundle = export_fhir(store, "ref-001")
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Provenance") == len(examples)
    assert len(kinds) == 2 * len(examples) - 1  # the acknowledgement has no resource of its own
    provs = {stored(p)["event-id"]: p for p in resources(bundle, "Provenance")}
    ack = next(p for p in provs.values() if p["activity"]["coding"][0]["code"] == "alert_acknowledged")
    assert ack["target"] == [resources(bundle, "Provenance")[0]["patient"]]
    assert ack["activity"]["text"].startswith("alert acknowledged: omission:discharged:2007-12-03:memantine")
    admin = resources(bundle, "MedicationAdministration")
    assert [(a["status"], a.get("statusReason")) for a in admin] == [
        ("completed", None), ("entered-in-error", None), ("not-done", [{"text": "refused"}]), ("in-progress", None)]
    assert admin[-1]["dosage"]["rateQuantity"]["code"] == "ug/kg/h"
    orders = [(r["identifier"][0]["value"], r["status"]) for r in resources(bundle, "MedicationRequest")]
    assert orders == [("ket-1", "active"), ("mem-1", "active"), ("ket-1", "active"), ("mem-1", "on-hold"),
                      ("mem-1", "active"), ("ket-1", "stopped")]
    changed = resources(bundle, "MedicationRequest")[2]
    assert changed["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]["value"] == 27.5
    assert changed["priorPrescription"]["reference"] == f"urn:uuid:{resources(bundle, 'MedicationRequest')[0]['id']}"
