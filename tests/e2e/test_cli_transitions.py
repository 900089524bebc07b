"""mar reconcile, mar handoff and mar mme through the CLI (CliRunner), with exact output
where it matters; the HTML packet rendered in headless Chromium (skipped only when chromium
is not installed; CI installs it)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cli.main import cli

EVENTS = [
    {"type": "patient_registered", "effective_at": "2007-10-01T08:00:00-07:00", "timezone": "America/Los_Angeles"},
    {"type": "admitted", "effective_at": "2007-10-01T09:00:00-07:00", "location": "ward 5"},
    {"type": "medication_ordered", "effective_at": "2007-10-01T10:00:00-07:00", "order_id": "met-1",
     "drug": "methadone", "route": "po", "prescriber": "dr.a",
     "dosing": {"form": "scheduled", "dose": {"value": 40, "unit": "mg"}, "frequency": "tid"}},
    {"type": "medication_ordered", "effective_at": "2007-10-03T10:00:00-07:00", "order_id": "mem-1",
     "drug": "memantine", "route": "po", "prescriber": "dr.a", "indication": "neuropathic pain",
     "dosing": {"form": "scheduled", "dose": {"value": 10, "unit": "mg"}, "frequency": "bid"}},
    {"type": "medication_ordered", "effective_at": "2007-10-03T10:05:00-07:00", "order_id": "nap-1",
     "drug": "naproxen", "route": "po", "prescriber": "dr.a",
     "dosing": {"form": "scheduled", "dose": {"value": 500, "unit": "mg"}, "frequency": "bid"}},
    {"type": "dose_given", "effective_at": "2007-10-10T08:00:00-07:00", "order_id": "met-1",
     "dose": {"value": 40, "unit": "mg"}, "route": "po", "kind": "scheduled"},
    {"type": "discharged", "effective_at": "2007-10-10T11:00:00-07:00", "destination": "nursing home",
     "medication_list": [
         {"drug": "methadone", "route": "po", "order_id": "met-1",
          "dosing": {"form": "scheduled", "dose": {"value": 40, "unit": "mg"}, "frequency": "tid"}},
         {"drug": "naproxen", "route": "po", "order_id": "nap-1",
          "dosing": {"form": "scheduled", "dose": {"value": 500, "unit": "mg"}, "frequency": "tid"}}],
     "decisions": [{"drug": "naproxen", "action": "change", "reason": "pain: 1500 mg/day"}]},
]

RECONCILE_TEXT = """\
p-7: discharge at 2007-10-10 11:00 PDT (to nursing home)
compared: orders active just before (3) -> discharge list (2)

status     drug       before                      after
OMITTED    memantine  10 mg po twice daily        -
           omission: no documented reason
continued  methadone  40 mg po three times daily  40 mg po three times daily
changed    naproxen   500 mg po twice daily       500 mg po three times daily
           reason: pain: 1500 mg/day

1 of 3 lines not reconciled (omission or undocumented change): memantine omitted.
"""

MME_TEXT = """\
Prescribed MME per day, p-7 at 2007-10-09T12:00:00-07:00: active orders and listed medications
(prescribed MME: what the orders allow per day (CDC method: dose x doses per day x factor), not what was given (administered MME: mar totals))
table: cdc-2022 (2022-11): CDC 2022 oral MME factors, with parenteral factors from a common equianalgesic table

Scheduled
  methadone po (40 mg po three times daily): 40 mg x 3 doses/day = 120 mg/day x 4.7 = 564 MME/day

Scheduled: 564 MME/day; as needed at most: 0 MME/day; together at most: 564 MME/day
Not opioids (no MME): memantine, naproxen
"""


@pytest.fixture
def mar(tmp_path, runner):
    db = str(tmp_path / "mar.db")
    story = tmp_path / "story.jsonl"
    story.write_text("".join(json.dumps({"patient_id": "p-7", **e}) + "\n" for e in EVENTS))
    assert runner.invoke(cli, ["--db", db, "import", str(story)]).exit_code == 0

    def run(*args):
        return runner.invoke(cli, ["--db", db, *args])
    return run


def test_reconcile_prints_every_line_then_exits_3(mar):
    result = mar("reconcile", "p-7")
    assert (result.output, result.exit_code) == (RECONCILE_TEXT, 3)


def test_reconcile_json_and_exit_0_when_everything_is_reconciled(mar, tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps({"medication_list": [e for e in EVENTS[-1]["medication_list"]],
                                  "decisions": [{"drug": "memantine", "action": "stop", "reason": "no benefit"},
                                                {"drug": "naproxen", "action": "change", "reason": "pain"}]}))
    result = mar("reconcile", "p-7", "--list", str(listed), "--at", "2007-10-09T12:00", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["transition"], out["at"], out["proposed"]) == ("discharge", "2007-10-09T12:00:00-07:00", True)
    assert {x["drug"]: x["status"] for x in out["lines"]} == {
        "memantine": "stopped", "methadone": "continued", "naproxen": "changed"}


def test_reconcile_errors_name_what_is_wrong(mar, tmp_path):
    cases = [
        (("reconcile", "nobody"), "Error: no patient 'nobody' in this store\n"),
        (("reconcile", "p-7", "--transition", "readmission"),
         "Error: no readmission recorded for patient p-7\n"),
        (("reconcile", "p-7", "--at", "2007-10-10 noon"),
         "Error: --at='2007-10-10 noon': not an ISO 8601 time (for example 2007-12-03T11:00:00-08:00, or without an "
         "offset in the patient's time zone)\n"),
    ]
    for args, message in cases:
        result = mar(*args)
        assert (result.exit_code, result.output) == (1, message), args
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"drug": "methadone", "route": "po"}]))
    result = mar("reconcile", "p-7", "--list", str(bad))
    assert result.exit_code == 1
    assert result.output == (f"Error: {bad}: 1 problem in the list:\n"
                             "  [0].dosing=None: Field required\n")
    assert mar("reconcile", "p-7", "--transition", "landing").exit_code == 2  # click refuses the choice


def test_mme_of_the_active_orders(mar):
    result = mar("mme", "p-7", "--at", "2007-10-09T12:00")
    assert (result.output, result.exit_code) == (MME_TEXT, 0)
    out = json.loads(mar("mme", "p-7", "--at", "2007-10-09T12:00", "--mme-table", "cdc-2016", "--json").output)
    assert (out["mme_table"], out["scheduled_mme"]) == ("cdc-2016", 1440)  # 120 mg/day x 12
    result = mar("mme", "p-7", "--mme-table", "who-1986")
    assert result.exit_code == 1 and result.output.startswith("Error: no MME table 'who-1986'; known: cdc-2016")


def test_mme_of_a_fhir_bundle_for_a_patient_not_in_the_store(mar):
    bundle = Path(__file__).resolve().parents[1] / "data" / "fhir" / "handwritten-r5.json"
    result = mar("mme", "elsewhere-1", "--list", str(bundle))
    # that Bundle also carries administrations: a list holds requests and statements only
    assert result.exit_code == 1
    assert "Bundle.entry[5].resource(MedicationAdministration/ma-oxycodone-1)" in result.output


def test_handoff_formats_and_output_file(mar, tmp_path):
    text = mar("handoff", "p-7").output
    assert text.startswith("MEDICATION HANDOFF: DISCHARGE TO NURSING HOME AT 2007-10-10 11:00\n")
    assert text.index("!! [HIGH] memantine (unreconciled stop, 2007-10-10 11:00)") < text.index("MEDICATIONS ON THE")
    md = mar("handoff", "p-7", "--format", "md").output
    assert md.startswith("# Medication handoff: discharge to nursing home at 2007-10-10 11:00\n")
    packet = json.loads(mar("handoff", "p-7", "--format", "json").output)
    assert [m["drug"] for m in packet["medications"]] == ["methadone", "naproxen"]
    out = tmp_path / "packet.fhir.json"
    result = mar("handoff", "p-7", "--format", "fhir", "-o", str(out))
    assert result.exit_code == 0 and result.output == f"wrote {out}\n"
    bundle = json.loads(out.read_text())
    assert bundle["resourceType"] == "Bundle" and bundle["entry"][0]["resource"]["resourceType"] == "List"
    assert mar("handoff", "p-7", "--format", "pdf").exit_code == 2


def test_help_of_every_transitions_command(runner):
    for name, words in (("reconcile", "Exit status 3 when an omission"), ("handoff", "Open alerts first"),
                        ("mme", "Prescribed MME per day")):
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and words in " ".join(result.output.split()), name


# --- the printable page in a real browser -----------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_html_packet_in_headless_chromium(mar, tmp_path):
    page = tmp_path / "packet.html"
    assert mar("handoff", "p-7", "--format", "html", "-o", str(page)).exit_code == 0
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-500:]
    body = dom.stdout
    assert "<script" not in body
    # what the browser shows, in order: the alert box with the omission, then the list
    order = [body.index(x) for x in ("Open alerts (2)", "memantine", "does not carry it over",
                                     "Medications on the list that leaves (2)", "Opioid exposure")]
    assert order == sorted(order)
    shot = tmp_path / "packet.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=900,1200", page.as_uri())
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-500:]
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    red = (r > 150) & (g < 40) & (b < 60)  # the alert box's border and text (#b00020)
    rows = np.nonzero(red.any(axis=1))[0]
    # drawn, and at the top: the first red row is in the top quarter of the page
    assert red.sum() > 500 and rows[0] < pixels.shape[0] // 4
