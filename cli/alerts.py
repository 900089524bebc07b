"""mar alerts, ack and plot (registered by cli.main)."""
from __future__ import annotations

import click

from cli.main import cli, dump_json

TIME_HELP = "ISO 8601; without a UTC offset, in the patient's time zone."


@cli.command()
@click.argument("patient", required=False)
@click.option("--status", type=click.Choice(["open", "acknowledged", "resolved", "all"]), default="all",
              show_default=True, help="Which alerts to show: open, acknowledged by someone, resolved by the "
              "record itself (what the alert pointed at was put right later), or all.")
@click.option("--at", metavar="TIME", help="The alerts raised by this clinical time, from what happened "
              "by then. " + TIME_HELP)
@click.option("--known-at", metavar="TIME", help="Only what the record showed at this recorded time: events "
              "charted later, corrections and acknowledgements included, are left out. " + TIME_HELP)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {id, patient_id, rule, severity, drug, "
              "at, message, evidence, status, acknowledged, resolved}.")
@click.pass_obj
def alerts(settings, patient, status, at, known_at, as_json):
    """Medication alerts of PATIENT (of every patient without one).

    Open alerts first, the most severe first. Rules and thresholds: docs/alerts.md
    (a site overrides them with MAR_ALERT_RULES=file.json). Each alert names the
    events that raised it; `mar ack` acknowledges one. An alert whose situation the
    record has since put right (a dropped medication ordered again, a combination
    stopped) is resolved, with when and by which events.
    """
    from projections.alerts.store import list_alerts

    with settings.store() as store:
        found = list_alerts(store, patient, status, at, known_at)
    if as_json:
        dump_json(found)
        return
    for line in alerts_text(found, patient, status):
        click.echo(line)


def alerts_text(found: list[dict], patient: str | None, status: str) -> list[str]:
    which = "" if status == "all" else f"{status} "
    if not found:
        return [f"{patient + ': ' if patient else ''}no {which}alerts"]
    out = []
    for a in found:
        out.append(f"{a['severity'].upper():<9}{a['status']:<13}{a['at'][:16].replace('T', ' ')}  "
                   f"{a['patient_id']}  {a['drug']}  {a['id']}  ({a['rule']})")
        out.append(f"  {a['message']}")
        out.append(f"  evidence: {', '.join(a['evidence'])}")
        if a["acknowledged"]:
            ack = a["acknowledged"]
            out.append(f"  acknowledged by {ack['by']} at {ack['at'][:16].replace('T', ' ')}: {ack['reason']}")
        if a.get("resolved"):
            done = a["resolved"]
            out.append(f"  resolved at {done['at'][:16].replace('T', ' ')}: {done['reason']} "
                       f"(evidence: {', '.join(done['evidence']) or 'none'})")
    open_ = [a for a in found if a["status"] == "open"]
    counts = ", ".join(f"{n} {sev}" for sev in ("high", "moderate", "low")
                       if (n := sum(1 for a in (found if which else open_) if a["severity"] == sev)))
    if which:  # one status asked for: how many, by severity
        out.append(f"{len(found)} {which}alert{'s' if len(found) != 1 else ''} ({counts})")
        return out
    acked = sum(1 for a in found if a["status"] == "acknowledged")
    out.append(f"{len(found)} alert{'s' if len(found) != 1 else ''}: {len(open_)} open"
               f"{f' ({counts})' if counts else ''}, {acked} acknowledged, {len(found) - len(open_) - acked} resolved")
    return out


def resolved_text(found: list[dict]) -> list[str]:
    """One line per resolved alert: what it was, when and how the record put it right."""
    return [f"{a['severity'].upper():<9}{a['at'][:16].replace('T', ' ')}  {a['drug']} ({a['rule']}): resolved "
            f"{a['resolved']['at'][:16].replace('T', ' ')}: {a['resolved']['reason']}" for a in found]


@cli.command()
@click.argument("alert")
@click.option("--reason", required=True, help="What was done about the alert, or why it needs nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the acknowledged alert as JSON.")
@click.pass_obj
def ack(settings, alert, reason, as_json):
    """Acknowledge ALERT, an id from `mar alerts`.

    Records an alert_acknowledged event with who (--user) and why (--reason); the alert
    then shows as acknowledged. An unknown id is an error and nothing is written."""
    from projections.alerts.store import acknowledge

    with settings.store(write=True) as store:
        done = acknowledge(store, settings.user, alert, reason)
    if as_json:
        dump_json(done)
        return
    who = done["acknowledged"]
    click.echo(f"acknowledged {done['id']} ({done['patient_id']}, {done['drug']}) by {who['by']}: {who['reason']}")


@cli.command()
@click.argument("patient")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The PNG file to write.")
@click.option("--from", "first", metavar="DATE",
              help="First local day (YYYY-MM-DD); default the first day with a dose.")
@click.option("--to", "last", metavar="DATE", help="Last local day (YYYY-MM-DD); default the last day charted.")
@click.pass_obj
def plot(settings, patient, output, first, last):
    """Draw PATIENT's opioid use against adjuvant infusions, as a PNG.

    Daily opioid use per drug (mg) and in MME against adjuvant infusion rates (ketamine
    mg/h), with memantine doses and transitions of care marked: the reference paper's
    Figure 2, for any patient."""
    from projections.plot import plot_patient

    with settings.store() as store:
        info = plot_patient(store, patient, output, first, last)
    click.echo(f"wrote {output}: {info['days']} days from {info['from']} to {info['to']} "
               f"({info['width']}x{info['height']} px)")
