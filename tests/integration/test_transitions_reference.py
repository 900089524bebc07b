"""Acceptance of the transitions of care on the reference case (fixtures/seed_case.jsonl,
patient ref-001; shared/case/seed-case.md): reconciliation at the POD 49 discharge (memantine
omitted), at the second discharge (all reconciled), at the POD 65 readmission (memantine
missing since POD 49), and the handoff packets of both discharges. Transition times are read
from the fixture, not written here."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "seed_case.jsonl"
PATIENT = "ref-001"


def transitions(kind: str) -> list[str]:
    events = [json.loads(x) for x in FIXTURE.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [e["effective_at"] for e in events if e["type"] == kind]


POD49, POD72 = transitions("discharged")
(POD65,) = transitions("readmitted")


@pytest.fixture(scope="module")
def mar(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("ref") / "mar.db")
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MAR_DB", "MAR_READ_ONLY", "MAR_CATALOG", "MAR_PROJECTIONS", "MAR_MME_TABLES"):
            mp.delenv(name, raising=False)
        done = runner.invoke(cli, ["--db", db, "--user", "test.fixture", "import", str(FIXTURE)])
    assert done.exit_code == 0, done.output

    def run(*args):
        return runner.invoke(cli, ["--db", db, *args])
    return run


def statuses(out: str) -> dict[str, str]:
    return {x["drug"]: x["status"] for x in json.loads(out)["lines"]}


def test_the_fixture_has_the_transitions_of_the_paper():
    assert POD49.startswith("2007-12-03") and POD65.startswith("2007-12-19") and POD72.startswith("2007-12-26")


def test_pod49_discharge_memantine_omitted_exit_3(mar):
    result = mar("reconcile", PATIENT, "--transition", "discharge", "--at", POD49, "--json")
    assert result.exit_code == 3, result.output
    out = json.loads(result.output)
    assert (out["patient_id"], out["transition"], out["at"]) == (PATIENT, "discharge", POD49)
    assert statuses(result.output) == {"memantine": "omitted", "methadone": "continued", "gabapentin": "continued",
                                       "naproxen": "continued", "oxycodone": "continued"}
    mem = out["lines"][0]
    assert mem["drug"] == "memantine" and mem["before"]["text"] == "10 mg po twice daily" and mem["after"] is None
    assert (mem["discrepancy"], mem["documentation"], mem["reason"]) == (["omission"], "undocumented", None)


def test_pod49_text_output_is_printed_before_the_exit_status(mar):
    result = mar("reconcile", PATIENT, "--transition", "discharge", "--at", POD49)
    assert result.exit_code == 3
    assert result.output.splitlines()[4].split() == ["OMITTED", "memantine", "10", "mg", "po", "twice", "daily", "-"]
    assert result.output.rstrip().endswith(
        "1 of 5 lines not reconciled (omission or undocumented change): memantine omitted.")


def test_second_discharge_everything_reconciled_exit_0(mar):
    result = mar("reconcile", PATIENT, "--transition", "discharge", "--json")  # the latest: about POD 72
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["at"] == POD72 and out["reconciled"] is True
    assert set(statuses(result.output).values()) == {"continued"}
    assert statuses(result.output)["memantine"] == "continued"


def test_readmission_reports_memantine_missing_since_pod49(mar):
    result = mar("reconcile", PATIENT, "--transition", "readmission", "--json")
    out = json.loads(result.output)
    assert out["at"] == POD65
    mem = next(x for x in out["lines"] if x["drug"] == "memantine")
    assert (mem["status"], mem["missing_since"]) == ("new", POD49)
    assert mem["missing_before"]["order_id"] == "memantine-po-1"
    text = mar("reconcile", PATIENT, "--transition", "readmission").output
    assert "missing since 2007-12-03 11:00 PST (left off that discharge list without a reason)" in text


def test_pod49_handoff_html_shows_the_memantine_omission_at_the_top(mar, tmp_path):
    path = tmp_path / "pod49.html"
    result = mar("handoff", PATIENT, "--at", POD49, "--format", "html", "-o", str(path))
    assert result.exit_code == 0, result.output
    html = path.read_text()
    alerts = html.index('<section class="alerts"')
    first = html.index("memantine")
    assert alerts < first < html.index("Medications on the list that leaves")
    box = html[alerts:html.index("</section>")]
    assert "unreconciled stop" in box and "does not carry it over and no decision stops it" in box
    assert "1 of 5 lines NOT reconciled: memantine omitted (omission)" in box


def test_pod72_handoff_lists_memantine_10_mg_twice_daily(mar):
    out = json.loads(mar("handoff", PATIENT, "--at", POD72, "--format", "json").output)
    meds = {m["drug"]: m for m in out["medications"]}
    assert set(meds) == {"memantine", "methadone", "gabapentin", "naproxen", "oxycodone"}
    mem = meds["memantine"]
    assert (mem["dose"], mem["unit"], mem["frequency"], mem["text"]) == (10, "mg", "bid", "10 mg po twice daily")
    assert mem["first_started_at"].startswith("2007-10-20")  # POD 5
    assert any("left off the discharge list of 2007-12-03 11:00" in w for w in mem["why"])
    assert any("ketamine stopped: taper complete; pain controlled on memantine" in w for w in mem["why"])
    assert out["omitted"] == [] and out["reconciliation"]["reconciled"] is True
    text = mar("handoff", PATIENT, "--at", POD72).output
    assert "memantine 10 mg po twice daily  [continued]" in text


def test_pod49_packet_mme_administered_and_prescribed(mar):
    out = json.loads(mar("handoff", PATIENT, "--at", POD49, "--format", "json").output)
    days = {d["date"]: d["mme"] for d in out["mme"]["administered"]["days"]}
    # a full day on the ward: methadone 120 mg x 4.7 = 564 + oxycodone 30 mg (once) x 1.5 = 45
    assert days["2007-12-01"] == 609
    pre = out["mme"]["prescribed"]
    # the list: methadone 40 mg tid = 564; oxycodone 30 mg q4h as needed at most 180 mg x 1.5 = 270, apart
    assert (pre["scheduled_mme"], pre["as_needed_max_mme"], pre["max_mme"]) == (564, 270, 834)


def test_the_fhir_packet_of_pod72_reads_back_and_reconciles_as_the_same_list(mar, tmp_path):
    path = tmp_path / "pod72.json"
    assert mar("handoff", PATIENT, "--at", POD72, "--format", "fhir", "-o", str(path)).exit_code == 0
    before = POD72.replace("11:00:00", "10:59:00")
    result = mar("reconcile", PATIENT, "--list", str(path), "--at", before, "--json")
    assert result.exit_code == 0, result.output
    assert set(statuses(result.output).values()) == {"continued"}
