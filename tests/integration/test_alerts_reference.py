"""Acceptance on the reference case (fixtures/seed_case.jsonl, patient ref-001), through the CLI.

shared/case/seed-case.md: one unreconciled omission of memantine at the POD 49 discharge,
none at the second discharge, none for drugs carried over or stopped with a reason; plus the
POD 6 failed ketamine taper, the opioid-benzodiazepine overlap of POD 0 and the home
gabapentin dose (1800 mg/day) ordered at 1500 mg/day without a reason.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter

import pytest
from click.testing import CliRunner

from cli.main import cli
from projections.alerts.engine import patient_alerts
from projections.events_table import patient_events
from projections.runner import Runner
from mar.store import EventStore
from tests.conftest import FIXTURE

PATIENT = "ref-001"
POD = {0: "2007-10-15", 6: "2007-10-21", 49: "2007-12-03", 72: "2007-12-26"}


def mar(db, *args, user="ref.test"):
    result = CliRunner().invoke(cli, ["--db", db, "--user", user, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ref") / "ref.db")
    mar(path, "import", FIXTURE)
    return path


@pytest.fixture(scope="module")
def alerts(db):
    return json.loads(mar(db, "alerts", PATIENT, "--json"))


def of(alerts, rule):
    return [a for a in alerts if a["rule"] == rule]


def test_exactly_one_memantine_omission_at_the_pod_49_discharge_and_none_at_the_second(alerts):
    [omission] = of(alerts, "unreconciled_stop")
    assert omission["drug"] == "memantine" and omission["severity"] == "high" and omission["status"] == "resolved"
    assert omission["at"] == f"{POD[49]}T11:00:00-08:00"
    # put right only when the readmission's team ordered memantine again, 16 days later
    assert omission["resolved"] == {
        "at": "2007-12-19T15:00:00-08:00", "evidence": ["ref-001/1324"],
        "reason": "memantine ordered again 16 days after the discharge: memantine po 10 mg bid "
                  "(order memantine-po-2)"}
    assert omission["evidence"] == ["ref-001/1239", "ref-001/0503"]  # the discharge, the memantine order
    assert omission["message"].startswith("memantine po 10 mg bid (order memantine-po-1) was active before the "
                                          "discharge to nursing home at 2007-12-03 11:00")
    # what refcheck reads: exactly one alert mentioning memantine dated on that discharge
    assert [a["id"] for a in alerts if "memantine" in json.dumps(a).lower()
            and a["at"][:10] in (POD[49], "2007-12-04")] == [omission["id"]]
    # the second discharge carries memantine (and everything else) over: nothing about it
    assert not [a for a in alerts if a["at"][:10] == POD[72]]


def test_the_pod_6_failed_ketamine_taper(alerts):
    [taper] = of(alerts, "adjuvant_taper")
    assert (taper["drug"], taper["at"]) == ("ketamine", f"{POD[6]}T08:00:00-07:00")
    # the reduction to 13.8 mcg/kg/h, the ketamine order, then the hydromorphone increases at 11:00 and 15:00
    assert taper["evidence"] == ["ref-001/0537", "ref-001/0350", "ref-001/0545", "ref-001/0562"]
    assert taper["message"].startswith("ketamine iv (order ketamine-iv-1) reduced from 2.5 to 1.26 mg/h at "
                                       "2007-10-21 08:00 (continuing taper); opioid use then rose 101%")


def test_the_pod_0_opioid_benzodiazepine_overlap(alerts):
    [both] = of(alerts, "opioid_benzodiazepine")
    assert (both["drug"], both["severity"], both["at"]) == ("lorazepam", "high", f"{POD[0]}T10:40:00-07:00")
    assert both["evidence"] == ["ref-001/0167", "ref-001/0165", "ref-001/0007", "ref-001/0008"]


def test_the_home_gabapentin_dose_ordered_lower_without_a_reason(alerts):
    [gaba] = [a for a in of(alerts, "admission_discrepancy") if a["drug"] == "gabapentin"]
    assert gaba["at"] == "2007-10-14T01:03:00-07:00"
    assert "(1800 mg/day before, 1500 mg/day ordered)" in gaba["message"]
    assert gaba["evidence"] == ["ref-001/0002", "ref-001/0004", "ref-001/0009"]


def test_the_whole_census_of_the_reference_case(alerts):
    assert Counter(a["rule"] for a in alerts) == {
        "unreconciled_stop": 1,
        "admission_discrepancy": 4,  # gabapentin at admission; naproxen, morphine, oxycodone at readmission
        "mme_threshold": 3,          # 90 on POD -1; 50 and 90 again at the nursing home (after days at 0)
        "mme_rise": 2,               # POD 0 and POD 1
        "opioid_benzodiazepine": 1,
        "duplicate_opioid": 2,       # nursing-home IV morphine beside listed oxycodone; morphine-iv-2 beside oxycodone-po-2
        "adjuvant_taper": 1,
        "as_needed_too_soon": 1,     # nursing-home morphine 3 h after the previous q4h dose
    }
    assert len({a["id"] for a in alerts}) == len(alerts)


def test_the_90_mme_crossing_of_pod_minus_1_by_hand(alerts):
    """PCA from 01:00, basal 1.2 mg/h, demands of 1.2 mg at 01:08, 01:20, 01:32, 01:44; IV
    hydromorphone x 20 MME/mg (cdc-2022). Just before 01:44: 3 x 1.2 + 1.2 x 44/60 = 4.48 mg
    = 89.6 MME; with the 01:44 demand: 5.68 mg = 113.6 MME. So 90 is reached at 01:44 by that dose."""
    first = min(of(alerts, "mme_threshold"), key=lambda a: a["at"])
    assert (first["at"], first["severity"], first["evidence"][0]) == ("2007-10-14T01:44:00-07:00", "high",
                                                                        "ref-001/0013")
    assert round((3 * 1.2 + 1.2 * 44 / 60) * 20, 6) == 89.6 and round((4 * 1.2 + 1.2 * 44 / 60) * 20, 6) == 113.6


def test_transition_alerts_agree_with_mar_reconcile(db, alerts):
    unreconciled = set()
    for at in ("2007-10-15T00:00:00", "2007-12-03T12:00:00", "2007-12-20T14:00:00", "2007-12-27T00:00:00"):
        result = CliRunner().invoke(cli, ["--db", db, "reconcile", PATIENT, "--at", at, "--json"])
        assert result.exit_code in (0, 3), result.output
        out = json.loads(result.output)
        unreconciled |= {(out["event_id"], x["drug"]) for x in out["lines"] if not x["reconciled"]}
    mine = {(a["evidence"][0], a["drug"]) for a in alerts if a["rule"] in ("unreconciled_stop", "admission_discrepancy")}
    assert mine == unreconciled


def test_the_stored_read_model_is_the_pure_computation_and_survives_a_rebuild(db, alerts):
    with EventStore(db) as store, Runner(store) as runner:
        pure = patient_alerts(patient_events(runner.db, PATIENT))
    assert sorted(a["id"] for a in alerts) == sorted(a.id for a in pure)
    projections = db.replace(".db", ".projections.db")
    rows = sqlite3.connect(projections).execute("SELECT * FROM alerts ORDER BY id").fetchall()
    os.remove(projections)
    assert json.loads(mar(db, "alerts", PATIENT, "--json")) == alerts
    assert sqlite3.connect(projections).execute("SELECT * FROM alerts ORDER BY id").fetchall() == rows


def test_acknowledging_the_memantine_omission(tmp_path):
    db = str(tmp_path / "ref.db")
    mar(db, "import", FIXTURE)
    [omission] = [a for a in json.loads(mar(db, "alerts", PATIENT, "--json")) if a["rule"] == "unreconciled_stop"]
    out = mar(db, "ack", omission["id"], "--reason", "left off the discharge list by mistake; restarted",
              user="pharm.diaz")
    assert out == (f"acknowledged {omission['id']} (ref-001, memantine) by pharm.diaz: "
                   f"left off the discharge list by mistake; restarted\n")
    # memantine was ordered again later in the record: the alert is resolved, the ack stays on it
    assert json.loads(mar(db, "alerts", PATIENT, "--status", "acknowledged", "--json")) == []
    [acked] = [a for a in json.loads(mar(db, "alerts", PATIENT, "--status", "resolved", "--json"))
               if a["rule"] == "unreconciled_stop"]
    assert acked["id"] == omission["id"] and acked["status"] == "resolved"
    assert acked["acknowledged"]["by"] == "pharm.diaz"
    assert acked["acknowledged"]["reason"] == "left off the discharge list by mistake; restarted"
    assert omission["id"] not in {a["id"] for a in json.loads(mar(db, "alerts", PATIENT, "--status", "open", "--json"))}
    [event] = [e for e in json.loads(mar(db, "history", PATIENT, "--json")) if e["type"] == "alert_acknowledged"]
    assert (event["alert_id"], event["recorded_by"]) == (omission["id"], "pharm.diaz")
    assert acked["acknowledged"]["event_id"] == event["event_id"]
