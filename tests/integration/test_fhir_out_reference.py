"""The handoff Bundle of the reference case (fixtures/seed_case.jsonl, ref-001) is valid FHIR R5
and R4B by the fhir.resources models: at every transition (POD 49, 65, 72) and at noon of
every day of the stay, and as `mar handoff --format fhir` prints it. The command checks values
without the models (docs/decisions/0004-fhir-output-validation.md); this is the guarantee on
real packets, beside the generated ones of tests/unit/test_fhir_out_valid.py."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from mar.fhir_bundle import model_class
from mar.fhir_lists import medication_list_from_bundle
from mar.store import EventStore
from projections.handoff import build_packet
from projections.handoff.fhir import to_fhir
from projections.reconcile import load_patient

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "seed_case.jsonl"
PATIENT = "ref-001"
EVENTS = [json.loads(x) for x in FIXTURE.read_text(encoding="utf-8").splitlines() if x.strip()]
TRANSITIONS = [e["effective_at"] for e in EVENTS if e["type"] in ("admitted", "discharged", "readmitted")]
POD49, POD72 = [e["effective_at"] for e in EVENTS if e["type"] == "discharged"]


def noons() -> list[str]:
    """Noon (at the fixture's offset of that day) of every day from the first event to the last."""
    first = datetime.fromisoformat(EVENTS[0]["effective_at"])
    last = datetime.fromisoformat(EVENTS[-1]["effective_at"])
    day = first.replace(hour=12, minute=0)
    out = []
    while day <= last + timedelta(days=1):
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("ref") / "mar.db")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MAR_DB", "MAR_READ_ONLY", "MAR_CATALOG", "MAR_PROJECTIONS", "MAR_MME_TABLES"):
            mp.delenv(name, raising=False)
        done = CliRunner().invoke(cli, ["--db", path, "--user", "test.fixture", "import", str(FIXTURE)])
        assert done.exit_code == 0, done.output
        yield path


@pytest.fixture(scope="module")
def packets(db) -> dict[str, dict]:
    with EventStore(db, read_only=True) as store:
        record = load_patient(store, PATIENT)
        return {at: build_packet(record, record.time(at)) for at in TRANSITIONS + noons()}


def test_the_times_cover_the_stay_and_the_transitions(packets):
    assert len(TRANSITIONS) == 4 and len(packets) > 100
    with_lines = [p for p in packets.values() if p["medications"]]
    with_alerts = [p for p in packets.values() if p["alerts"]["current"] + p["alerts"]["older"]]
    assert len(with_lines) > 100 and len(with_alerts) > 100  # the models see full Bundles, not empty ones


def has_pca(packet: dict) -> bool:
    return any(m["line"]["dosing"]["form"] == "pca" for m in packet["medications"] + packet["stopped"])


@pytest.mark.parametrize("version", ["R5", "R4B"])
def test_every_packet_of_the_stay_is_valid_fhir_and_reads_back(packets, version):
    bundle_model = model_class(version, "Bundle")
    with_pca = 0
    for at, packet in packets.items():
        bundle = to_fhir(packet, version)
        bundle_model.model_validate(bundle)  # raises, naming the element, if it is not valid FHIR
        statements = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationStatement"]
        assert len(statements) == len(packet["medications"]) + len(packet["stopped"]), at
        assert medication_list_from_bundle(bundle) == [m["line"] for m in packet["medications"]], at
        with_pca += has_pca(packet)
    assert (len(packets), with_pca) == (118, 14)  # 14 with the PCA running: two concurrent instructions


@pytest.mark.parametrize("at", [POD49, POD72])
def test_the_command_prints_a_valid_r5_bundle_that_reads_back(db, packets, at):
    result = CliRunner().invoke(cli, ["--db", db, "handoff", PATIENT, "--at", at, "--format", "fhir"])
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.output)
    model_class("R5", "Bundle").model_validate(bundle)
    assert bundle == to_fhir(packets[at])
    assert medication_list_from_bundle(bundle) == [m["line"] for m in packets[at]["medications"]]
