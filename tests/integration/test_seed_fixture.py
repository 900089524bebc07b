"""The reference case fixture (fixtures/seed_case.jsonl, patient ref-001) through the CLI.

The file is imported once per module into a fresh SQLite store; the tests read what the
store gives back, so they check the committed file as stored, not the generator's memory.
"""
from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from mar.chart import Chart

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "seed_case.jsonl"
GENERATOR = ROOT / "fixtures" / "build_seed_case.py"
PATIENT = "ref-001"
ENV = ("MAR_DB", "MAR_READ_ONLY", "MAR_CIPHER_KEY", "MAR_HMAC_KEY", "MAR_CATALOG", "MAR_PROJECTIONS")


def generator():
    spec = importlib.util.spec_from_file_location("build_seed_case", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def lines() -> list[dict]:
    return [json.loads(x) for x in FIXTURE.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """(first import result, second import result, stored history) from one fresh store."""
    db = str(tmp_path_factory.mktemp("ref") / "mar.db")
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV:
            mp.delenv(name, raising=False)
        first = runner.invoke(cli, ["--db", db, "--user", "test.fixture", "import", str(FIXTURE)])
        second = runner.invoke(cli, ["--db", db, "--user", "test.fixture", "import", str(FIXTURE)])
        shown = runner.invoke(cli, ["--db", db, "history", PATIENT, "--json"])
    assert shown.exit_code == 0, shown.output
    return first, second, json.loads(shown.output)


@pytest.fixture(scope="module")
def history(imported) -> list[dict]:
    return imported[2]


def test_fixture_imports_with_zero_errors(imported, lines):
    first = imported[0]
    assert first.exit_code == 0, first.output
    assert first.output == f"{FIXTURE}: {len(lines)} added, 0 already stored (1 patient changed)\n"


def test_second_import_adds_nothing(imported, lines):
    second = imported[1]
    assert second.exit_code == 0, second.output
    assert second.output == f"{FIXTURE}: 0 added, {len(lines)} already stored (0 patients changed)\n"


def test_history_round_trips_every_line_in_order(history, lines):
    assert len(history) == len(lines)
    for line, stored in zip(lines, history):
        assert {k: stored.get(k) for k in line} == line
        assert stored["event_id"] == line["idempotency_key"]
        assert stored["stored_by"] == "test.fixture"


def test_generator_rebuilds_the_committed_file(tmp_path, capsys):
    out = tmp_path / "seed_case.jsonl"
    generator().main(["--out", str(out)])
    assert out.read_bytes() == FIXTURE.read_bytes()
    assert f"{out}: " in capsys.readouterr().out


def test_stored_events_carry_the_papers_hydromorphone_figures(history):
    gen = generator()
    segments, doses = gen.iv_hydromorphone(history)
    days = gen.per_day(segments, doses, (0, 2, 4))
    assert (days[0], days[2], days[4]) == (1512, 1512, 504)  # 63, 63 and 21 mg/h
    pod1 = gen.per_hour(segments, doses, 1)
    peak = max(mg for _, mg in pod1)
    assert peak == 333
    assert [hour for hour, mg in pod1 if mg == peak] == ["13:00"]
    gen.check(history)  # and every other figure the generator asserts


def discharges(history):
    return [e for e in history if e["type"] == "discharged"]


def chart_of(history) -> Chart:
    chart = Chart(PATIENT)
    for e in history:
        chart.apply(e)
    return chart


def active_orders_at(history, chart: Chart, when: datetime) -> set[str]:
    """Orders written since the last admission or readmission and active at `when`."""
    stay = max(t(e["effective_at"]) for e in history
               if e["type"] in ("admitted", "readmitted") and t(e["effective_at"]) <= when)
    return {o.order_id for o in chart.orders.values()
            if o.started_at >= stay and o.status_at(when, chart.voided) == "active"}


def test_memantine_left_off_the_first_discharge_without_a_decision(history):
    first = discharges(history)[0]
    when = t(first["effective_at"])
    assert first["effective_at"].startswith("2007-12-03")  # POD 49
    assert "memantine" not in {x["drug"] for x in first["medication_list"]}
    before = [e for e in history if t(e["effective_at"]) <= when]
    assert not [d for e in before for d in e.get("decisions", ()) if d["drug"] == "memantine"]
    orders = [e["order_id"] for e in before
              if e["type"] == "medication_ordered" and e["drug"] == "memantine"]
    assert orders == ["memantine-po-1"]
    assert not [e for e in before if e.get("order_id") == "memantine-po-1"
                and e["type"] in ("order_discontinued", "order_held")]
    chart = chart_of(history)
    assert chart.order("memantine-po-1").status_at(when, chart.voided) == "active"


def test_discharge_lists_carry_every_other_active_order(history):
    chart = chart_of(history)
    first, second = discharges(history)
    for discharge, omitted in ((first, {"memantine-po-1"}), (second, set())):
        active = active_orders_at(history, chart, t(discharge["effective_at"]))
        listed = {x["order_id"] for x in discharge["medication_list"]}
        assert listed <= active
        assert active - listed == omitted
    assert {x["drug"] for x in second["medication_list"]} == {
        "memantine", "methadone", "gabapentin", "naproxen", "oxycodone"}


def test_gabapentin_discrepancy_at_admission_is_undocumented(history):
    home = [e for e in history if e["type"] == "home_medication_recorded" and e["drug"] == "gabapentin"]
    ordered = [e for e in history if e["type"] == "medication_ordered" and e["order_id"] == "gabapentin-po-1"]
    assert [e["dosing"]["dose"]["value"] for e in home + ordered] == [600, 500]
    admitted = next(e for e in history if e["type"] == "admitted")
    assert "gabapentin" not in {d["drug"] for d in admitted.get("decisions", ())}


def test_lorazepam_given_with_hydromorphone_on_pod0(history):
    given = [e for e in history if e["type"] == "dose_given" and e["order_id"] == "lorazepam-iv-1"
             and e["effective_at"].startswith("2007-10-15")]
    assert len(given) == 2


def test_one_late_entry_and_one_correction(history):
    late = [e for e in history if e["late"]]
    assert [(e["type"], e["order_id"]) for e in late] == [("dose_given", "methadone-po-1")]
    assert t(late[0]["recorded_at"]) - t(late[0]["effective_at"]) == (t("2000-01-01T06:00:00+00:00")
                                                                       - t("2000-01-01T00:00:00+00:00"))
    corrected = [e for e in history if "entered_in_error_by" in e]
    assert [(e["type"], e["order_id"]) for e in corrected] == [("dose_given", "oxycodone-po-1")]


def test_the_case_ends_with_death_on_pod_112(history):
    assert history[-1]["type"] == "died"
    assert history[-1]["effective_at"].startswith("2008-02-04")
    assert max(t(e["effective_at"]) for e in history) == t(history[-1]["effective_at"])
