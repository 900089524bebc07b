"""mar alerts, mar ack and mar plot through the CLI (click's CliRunner)."""
from __future__ import annotations

import json

import pytest

from cli.main import cli
from tests.conftest import FIXTURE

T = "2007-10-{}T{}:00-07:00"


def line(**e) -> str:
    return json.dumps(e)


def small_record(path) -> str:
    """p-1: memantine left off a discharge list; lorazepam ordered beside methadone. p-2: nothing to say."""
    sched = lambda v, f: {"form": "scheduled", "dose": {"value": v, "unit": "mg"}, "frequency": f}  # noqa: E731
    rows = [
        line(type="patient_registered", patient_id="p-1", effective_at=T.format(14, "07:00"),
             timezone="America/Los_Angeles", idempotency_key="p1-reg"),
        line(type="admitted", patient_id="p-1", effective_at=T.format(14, "08:00"), location="ward 7",
             idempotency_key="p1-adm"),
        line(type="medication_ordered", patient_id="p-1", effective_at=T.format(14, "09:00"), order_id="mem-1",
             drug="memantine", route="po", dosing=sched(10, "bid"), prescriber="dr.a", idempotency_key="p1-mem"),
        line(type="medication_ordered", patient_id="p-1", effective_at=T.format(14, "09:01"), order_id="met-1",
             drug="methadone", route="po", dosing=sched(40, "tid"), prescriber="dr.a", idempotency_key="p1-met"),
        line(type="medication_ordered", patient_id="p-1", effective_at=T.format(15, "10:40"), order_id="lz-1",
             drug="lorazepam", route="iv", prescriber="dr.a", idempotency_key="p1-lz",
             dosing={"form": "as_needed", "dose": {"value": 1, "unit": "mg"}, "frequency": "q6h"}),
        line(type="discharged", patient_id="p-1", effective_at=T.format(20, "11:00"), destination="home",
             medication_list=[{"drug": "methadone", "route": "po", "dosing": sched(40, "tid"), "order_id": "met-1"}],
             decisions=[{"drug": "lorazepam", "action": "stop", "reason": "anxiety settled"}],
             idempotency_key="p1-dc"),
        line(type="patient_registered", patient_id="p-2", effective_at=T.format(14, "07:00"),
             timezone="America/Los_Angeles", idempotency_key="p2-reg"),
    ]
    (path / "small.jsonl").write_text("\n".join(rows) + "\n")
    return str(path / "small.jsonl")


@pytest.fixture
def db(tmp_path, runner):
    path = str(tmp_path / "mar.db")
    result = runner.invoke(cli, ["--db", path, "import", small_record(tmp_path)])
    assert result.exit_code == 0, result.output
    return path


def alerts_json(runner, db, *args):
    result = runner.invoke(cli, ["--db", db, "alerts", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_alerts_text_open_first_most_severe_first(runner, db):
    found = alerts_json(runner, db, "p-1")
    omission = next(a for a in found if a["rule"] == "unreconciled_stop")
    benzo = next(a for a in found if a["rule"] == "opioid_benzodiazepine")
    result = runner.invoke(cli, ["--db", db, "alerts", "p-1"])
    assert result.exit_code == 0
    assert result.output == (
        f"HIGH     open         2007-10-20 11:00  p-1  memantine  {omission['id']}  (unreconciled_stop)\n"
        "  memantine po 10 mg bid (order mem-1) was active before the discharge to home at 2007-10-20 11:00, but the "
        "discharge list does not carry it over and no decision stops it. Ask the prescriber whether it should "
        "continue: if so, add it to the list and tell the receiving team; if not, document the stop.\n"
        "  evidence: p1-dc, p1-mem\n"
        f"HIGH     resolved     2007-10-15 10:40  p-1  lorazepam  {benzo['id']}  (opioid_benzodiazepine)\n"
        "  lorazepam iv 1 mg q6h as needed (order lz-1) is active together with opioids from 2007-10-15 10:40: "
        "methadone po 40 mg tid (order met-1). Opioids with benzodiazepines risk fatal respiratory depression (FDA "
        "boxed warning): confirm both are needed, use the lowest doses, monitor sedation and respiratory rate.\n"
        "  evidence: p1-lz, p1-met\n"
        "  resolved at 2007-10-20 11:00: lorazepam and opioids no longer run together: lorazepam ended by the "
        "discharge (decided: stop, anxiety settled) (evidence: p1-dc)\n"
        "2 alerts: 1 open (1 high), 0 acknowledged, 1 resolved\n")


def test_alerts_json_shape_and_every_patient_without_one(runner, db):
    found = alerts_json(runner, db)
    assert [a["rule"] for a in found] == ["unreconciled_stop", "opioid_benzodiazepine"]
    assert set(found[0]) == {"id", "patient_id", "rule", "severity", "drug", "at", "message", "evidence", "status",
                             "acknowledged", "resolved"}
    assert found[0]["at"] == "2007-10-20T11:00:00-07:00" and found[0]["status"] == "open"
    assert found[0]["resolved"] is None
    assert found[1]["status"] == "resolved" and found[1]["resolved"] == {
        "at": "2007-10-20T11:00:00-07:00", "evidence": ["p1-dc"],
        "reason": "lorazepam and opioids no longer run together: lorazepam ended by the discharge "
                  "(decided: stop, anxiety settled)"}
    assert alerts_json(runner, db, "p-2") == []
    assert runner.invoke(cli, ["--db", db, "alerts", "p-2"]).output == "p-2: no alerts\n"


def test_ack_then_status_filters(runner, db):
    omission = alerts_json(runner, db, "p-1")[0]
    result = runner.invoke(cli, ["--db", db, "--user", "pharm.diaz", "ack", omission["id"], "--reason",
                                 "stopped on purpose: no benefit", "--json"])
    assert result.exit_code == 0, result.output
    acked = json.loads(result.output)
    assert acked["status"] == "acknowledged"
    assert {k: acked["acknowledged"][k] for k in ("by", "reason")} == {"by": "pharm.diaz",
                                                                       "reason": "stopped on purpose: no benefit"}
    assert alerts_json(runner, db, "p-1", "--status", "open") == []
    assert [a["id"] for a in alerts_json(runner, db, "--status", "acknowledged")] == [omission["id"]]
    assert [a["rule"] for a in alerts_json(runner, db, "--status", "resolved")] == ["opioid_benzodiazepine"]
    text = runner.invoke(cli, ["--db", db, "alerts", "p-1"]).output.splitlines()
    assert text[0].startswith("HIGH     acknowledged 2007-10-20 11:00  p-1  memantine")  # the latest first
    assert text[4].startswith("HIGH     resolved     2007-10-15 10:40  p-1  lorazepam")
    assert text[3].startswith("  acknowledged by pharm.diaz at ") and text[3].endswith(": stopped on purpose: no benefit")
    assert text[-1] == "2 alerts: 0 open, 1 acknowledged, 1 resolved"
    assert runner.invoke(cli, ["--db", db, "alerts", "p-1", "--status", "open"]).output == "p-1: no open alerts\n"


def test_ack_refuses_an_unknown_alert_and_writes_nothing(runner, db):
    before = runner.invoke(cli, ["--db", db, "history", "p-1"]).output
    result = runner.invoke(cli, ["--db", db, "ack", "omission-000000000000", "--reason", "x"])
    assert result.exit_code == 1
    assert result.output == "Error: no alert 'omission-000000000000' in this store (list them with `mar alerts`)\n"
    assert runner.invoke(cli, ["--db", db, "history", "p-1"]).output == before


def test_ack_needs_a_user_and_a_reason(runner, db, monkeypatch):
    monkeypatch.delenv("MAR_USER")
    some = alerts_json(runner, db, "p-1")[0]["id"]
    result = runner.invoke(cli, ["--db", db, "ack", some, "--reason", "seen"])
    assert result.exit_code == 1 and "who is writing? give --user or set MAR_USER" in result.output
    result = runner.invoke(cli, ["--db", db, "--user", "x", "ack", some])
    assert result.exit_code == 2 and "Missing option '--reason'" in result.output


def test_alerts_errors_name_the_value(runner, db):
    result = runner.invoke(cli, ["--db", db, "alerts", "nobody"])
    assert (result.exit_code, result.output) == (1, "Error: no patient 'nobody' in this store\n")
    result = runner.invoke(cli, ["--db", db, "alerts", "p-1", "--at", "yesterday"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: --at='yesterday': not an ISO 8601 time")


def test_alerts_at_a_clinical_time(runner, db):
    assert [a["rule"] for a in alerts_json(runner, db, "p-1", "--at", "2007-10-18T00:00:00")] == \
        ["opioid_benzodiazepine"]


@pytest.mark.parametrize("command", ["alerts", "ack", "plot"])
def test_help(runner, command):
    result = runner.invoke(cli, [command, "--help"], prog_name="mar")
    assert result.exit_code == 0 and result.output.startswith(f"Usage: mar {command} [OPTIONS]")
    assert len(result.output.split("\n\n")[1].strip()) > 40  # a description, not just the usage line


# --- the picture ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref_db(tmp_path_factory):
    from click.testing import CliRunner

    path = str(tmp_path_factory.mktemp("plot") / "ref.db")
    result = CliRunner().invoke(cli, ["--db", path, "--user", "t", "import", FIXTURE])
    assert result.exit_code == 0, result.output
    return path


def pixels(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size, im.convert("RGB")


def test_plot_writes_a_png_drawn_from_the_data(runner, ref_db, tmp_path):
    whole, early = str(tmp_path / "whole.png"), str(tmp_path / "early.png")
    result = runner.invoke(cli, ["--db", ref_db, "plot", "ref-001", "-o", whole])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {whole}: 114 days from 2007-10-14 to 2008-02-04 (1400x800 px)\n"
    result = runner.invoke(cli, ["--db", ref_db, "plot", "ref-001", "-o", early, "--from", "2007-10-13",
                                 "--to", "2007-10-31"])
    assert result.output == f"wrote {early}: 19 days from 2007-10-13 to 2007-10-31 (1400x800 px)\n"
    (size_a, a), (size_b, b) = pixels(whole), pixels(early)
    assert size_a == size_b == (1400, 800)
    colours = a.getcolors(maxcolors=1_000_000)
    inked = sum(n for n, c in colours if c != (255, 255, 255))
    assert len(colours) > 50 and inked > 0.03 * 1400 * 800  # not blank
    assert any(c == (0x1f, 0x4e, 0x9c) for _, c in colours)  # the hydromorphone line is drawn ...
    assert a.tobytes() != b.tobytes()  # ... and another range gives another picture


def test_plot_of_another_patient_differs(runner, ref_db, db, tmp_path):
    out = str(tmp_path / "p1.png")
    result = runner.invoke(cli, ["--db", db, "plot", "p-1", "-o", out])
    assert result.exit_code == 0, result.output
    ref = str(tmp_path / "ref.png")
    runner.invoke(cli, ["--db", ref_db, "plot", "ref-001", "-o", ref])
    assert pixels(out)[1].tobytes() != pixels(ref)[1].tobytes()


def test_the_plotted_series_are_the_daily_totals(ref_db):
    """The drawn hydromorphone line is the paper's daily IV totals: 1512 mg on POD 0 and POD 2, 504 on
    POD 4; ketamine 55 mcg/kg/h at 91 kg = 5.005 mg/h; memantine 5 mg then 10 mg."""
    from datetime import date

    from mar.store import EventStore
    from projections.events_table import patient_events
    from projections.plot import figure_data
    from projections.runner import Runner

    with EventStore(ref_db) as store, Runner(store) as runner:
        runner.catch_up()
        data = figure_data(patient_events(runner.db, "ref-001"), date(2007, 10, 13), date(2007, 10, 31))
    day = {d.isoformat(): i for i, d in enumerate(data.days)}
    hm = data.opioids["hydromorphone iv"]
    assert [round(hm[day[d]], 6) for d in ("2007-10-15", "2007-10-17", "2007-10-19")] == [1512, 1512, 504]
    assert hm[day["2007-10-13"]] == 0 and hm[day["2007-10-30"]] == 0
    assert round(data.mme[day["2007-10-15"]], 6) == 1512 * 20 + 120 * 4.7
    assert round(data.infusions["ketamine"][0][2], 6) == 5.005
    assert sorted({mg for _, mg in data.marked["memantine"]}) == [5, 10]
    assert [label for _, label in data.transitions] == ["admitted"]
    assert data.thresholds == []


def test_plot_refuses_a_range_backwards(runner, ref_db, tmp_path):
    result = runner.invoke(cli, ["--db", ref_db, "plot", "ref-001", "-o", str(tmp_path / "x.png"),
                                 "--from", "2007-11-01", "--to", "2007-10-01"])
    assert (result.exit_code, result.output) == (1, "Error: --to 2007-10-01 is before --from 2007-11-01\n")
    result = runner.invoke(cli, ["--db", ref_db, "plot", "ref-001", "-o", str(tmp_path / "x.png"), "--from", "Nov 1"])
    assert (result.exit_code, result.output) == (1, "Error: --from='Nov 1': give a local day as YYYY-MM-DD\n")


def test_a_new_event_raises_its_alert_on_the_next_read_and_settings_changes_recompute(runner, db, tmp_path,
                                                                                      monkeypatch):
    assert len(alerts_json(runner, db, "p-1")) == 2  # rows stored now
    dose = {"type": "dose_given", "patient_id": "p-1", "effective_at": "2007-10-15T11:00:00-07:00",
            "order_id": "lz-1", "dose": {"value": 1, "unit": "mg"}, "route": "iv", "kind": "as_needed"}
    for at in ("2007-10-15T11:00:00-07:00", "2007-10-15T13:00:00-07:00"):
        result = runner.invoke(cli, ["--db", db, "record", "--json", json.dumps({**dose, "effective_at": at})])
        assert result.exit_code == 0, result.output
    early = [a for a in alerts_json(runner, db, "p-1") if a["rule"] == "as_needed_too_soon"]
    assert [(a["drug"], a["at"]) for a in early] == [("lorazepam", "2007-10-15T13:00:00-07:00")]
    site = tmp_path / "rules.json"
    site.write_text(json.dumps({"rules": {"as_needed_too_soon": {"tolerance_minutes": 250}}}))
    monkeypatch.setenv("MAR_ALERT_RULES", str(site))
    assert [a["rule"] for a in alerts_json(runner, db, "p-1")] == ["unreconciled_stop", "opioid_benzodiazepine"]
