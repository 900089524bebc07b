"""mar summary: the one-page view of a patient (the README's main job)."""
from __future__ import annotations

import click

from cli.alerts import alerts_text, resolved_text
from cli.main import cli, dump_json
from cli.read import medication_text

RESOLVED_SHOWN = 10


@cli.command()
@click.argument("patient")
@click.option("--at", metavar="TIME", help="Show the regimen at this clinical time (default: now, "
              "or just before death). ISO 8601; without a UTC offset, in the patient's time zone.")
@click.option("--mme-table", metavar="NAME", help="Opioid conversion table (default cdc-2022).")
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
@click.pass_obj
def summary(settings, patient, at, mme_table, as_json):
    """One page about PATIENT: stays and transitions, the regimen, amounts given per local
    day with MME, the open alerts, and those the record has since put right."""
    from projections.summary import patient_summary

    with settings.store() as store:
        result = patient_summary(store, patient, at, mme_table)
    if as_json:
        dump_json(result)
        return
    for line in summary_text(result):
        click.echo(line)


def summary_text(s: dict) -> list[str]:
    out = [f"Patient {s['patient_id']} (days in {s['timezone']})", "", "Course:"]
    for t in s["course"]:
        out.append(f"  {t['at'][:16].replace('T', ' ')}  {t['kind']}" + (f" ({t['where']})" if t.get("where") else ""))
    if s["died_at"]:
        out.append(f"  {s['died_at'][:16].replace('T', ' ')}  died")
    reg = s["regimen"]
    label = f" ({s['regimen_note']})" if s["regimen_note"] else ""
    out += ["", f"Regimen at {reg['at'][:16].replace('T', ' ')}{label}:"]
    out += [f"  {medication_text(m)}" for m in reg["medications"]] or ["  no active medication"]
    tot = s["totals"]
    out += ["", f"Amounts given per local day (MME table {tot['mme_table']}):"]
    for first, last, d in same_day_runs(tot["days"]):
        drugs = ", ".join(f"{x['drug']} {x['route']} {x['amount']:g} {x['unit']}" for x in d["drugs"])
        mme = f"MME {d['mme']:>8.0f}" if d["mme"] else " " * 12
        span = first if first == last else f"{first} to {last}, each day:"
        out.append(f"  {span}  {mme}  {drugs}")
    out += ["", "Open alerts:"]
    out += ["  " + line for line in alerts_text(s["open_alerts"], s["patient_id"], "open")]
    done = s["resolved_alerts"]
    if done:
        out += ["", "Alerts the record has since put right:"]
        out += ["  " + line for line in resolved_text(done[:RESOLVED_SHOWN])]
        if len(done) > RESOLVED_SHOWN:  # one page: the most severe and latest only
            out.append(f"  ... and {len(done) - RESOLVED_SHOWN} more: mar alerts {s['patient_id']} --status resolved")
    return out


def same_day_runs(days: list[dict]) -> list[tuple[str, str, dict]]:
    """Consecutive days with the very same amounts, folded into one line (first, last, day)."""
    runs: list[tuple[str, str, dict]] = []
    for d in days:
        if runs and runs[-1][2]["drugs"] == d["drugs"] and _next_day(runs[-1][1]) == d["date"]:
            runs[-1] = (runs[-1][0], d["date"], runs[-1][2])
        else:
            runs.append((d["date"], d["date"], d))
    return runs


def _next_day(day: str) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
