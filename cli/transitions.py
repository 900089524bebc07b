"""mar transitions commands (registered by cli.main): reconcile, handoff, mme."""
from __future__ import annotations

import click

from cli.main import cli, dump_json

TRANSITIONS = ("admission", "transfer", "discharge", "readmission")
AT_HELP = ("ISO 8601 time; without a UTC offset, in the patient's time zone.")


@cli.command()
@click.argument("patient")
@click.option("--at", metavar="TIME",
              help="Reconcile the latest transition at or before TIME (with --list: compare with the "
                   "orders active at TIME; default now). " + AT_HELP)
@click.option("--transition", "kind", type=click.Choice(TRANSITIONS),
              help="Which kind of transition (default: the latest transition of any kind).")
@click.option("--list", "list_file", type=click.Path(exists=True, dir_okay=False),
              help="A proposed list not yet recorded: mar JSON (a list of medication lines, or "
                   "{\"medication_list\", \"decisions\"}) or a FHIR Bundle of MedicationStatement / "
                   "MedicationRequest (R4B or R5).")
@click.option("--json", "as_json", is_flag=True, help="Print the reconciliation as JSON.")
@click.pass_context
def reconcile(ctx, patient, at, kind, list_file, as_json):
    """Compare the two medication lists of a transition of care for PATIENT.

    Admission: home list against admission orders. Discharge or transfer: orders active
    just before against the list that leaves. Readmission: the last discharge list and
    what the other facility gave against the new orders. Every line is continued,
    changed, new, stopped (with a documented reason) or omitted (without one).

    Exit status 3 when an omission or an undocumented change remains (the output is
    printed first), 0 when every line is reconciled.
    """
    from projections.reconcile import EXIT_UNRECONCILED, reconcile_patient

    with ctx.obj.store() as store:
        result = reconcile_patient(store, patient, kind, at, list_file)
    if as_json:
        dump_json(result.to_json())
    else:
        click.echo(result.to_text())
    if not result.reconciled:
        ctx.exit(EXIT_UNRECONCILED)


@cli.command()
@click.argument("patient")
@click.option("--at", metavar="TIME", help="The orders active at TIME (default now). " + AT_HELP)
@click.option("--list", "list_file", type=click.Path(exists=True, dir_okay=False),
              help="A proposed list (mar JSON) or a FHIR Bundle of MedicationRequests instead of the "
                   "active orders.")
@click.option("--mme-table", "table", metavar="NAME",
              help="Conversion table (default cdc-2022; shipped: cdc-2022, cdc-2016, cdc-2022-nci; a site "
                   "adds its own with MAR_MME_TABLES).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def mme(settings, patient, at, list_file, table, as_json):
    """Prescribed MME per day of PATIENT's orders or of a proposed list.

    What the orders allow, the way CDC's calculator reads prescriptions: scheduled dose x
    doses per day x factor; as-needed orders at their maximum, shown apart; patches by
    their rate. The table and its edition are named. Not what was given: that is
    administered MME (mar totals)."""
    from projections.prescribed_mme import mme_for_patient

    with settings.store() as store:
        result = mme_for_patient(store, patient, at, list_file, table)
    if as_json:
        dump_json(result.to_json())
    else:
        click.echo(result.to_text())


@cli.command()
@click.argument("patient")
@click.option("--at", metavar="TIME",
              help="The packet at TIME: the list that left at the latest discharge or transfer at or "
                   "before it, or the active orders while in hospital (default: the latest discharge or "
                   "transfer). " + AT_HELP)
@click.option("--format", "fmt", type=click.Choice(["text", "md", "html", "json", "fhir"]), default="text",
              show_default=True, help="html: one printable page; fhir: an R5 Bundle (List, "
              "MedicationStatement, DetectedIssue).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of standard output.")
@click.option("--mme-table", metavar="NAME", help="MME conversion table (default cdc-2022).")
@click.pass_obj
def handoff(settings, patient, at, fmt, output, mme_table):
    """The handoff packet for PATIENT: what a receiving nurse needs.

    Open alerts first, then each medication with dose, route, frequency, indication,
    start, last dose and why it matters; what was stopped or left out; changes of the last
    7 days; tapers in progress; administered MME per day and, apart, the prescribed MME of
    the list."""
    from projections.handoff import handoff as make

    with settings.store() as store:
        text = make(store, patient, at, fmt, mme_table)
    if output:
        from pathlib import Path

        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
