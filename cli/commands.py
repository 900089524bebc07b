"""Write-side commands: import, record, history, schema."""
from __future__ import annotations

import json
from pathlib import Path

import click

from cli.main import cli, dump_json


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "fhir"]), default="jsonl", show_default=True,
              help="jsonl: one mar event per line; fhir: a FHIR R4B/R5 Bundle.")
@click.pass_obj
def import_(settings, files, fmt):
    """Import events from FILES, each file all-or-nothing.

    A file with any bad line writes nothing and every bad line is reported.
    Events already stored (same idempotency key and content) are skipped. A
    JSON document over many lines (a FHIR Bundle without --format fhir) is one
    problem.
    """
    from mar.importing import import_file

    with settings.store(write=True) as store:
        for path in files:
            summary = import_file(store, settings.user, path, fmt, progress=_progress_for(path))
            click.echo(
                f"{path}: {summary.added} added, {summary.already_stored} already stored"
                f" ({len(summary.patients)} patient{'s' if len(summary.patients) != 1 else ''} changed)"
            )


def _progress_for(path: str):
    size = Path(path).stat().st_size
    if size < 5_000_000:
        return None
    bar = click.progressbar(length=size, label=f"reading {path}", file=click.get_text_stream("stderr"))
    return bar


@cli.command()
@click.option("--json", "payload", required=True, help="One event as a JSON object.")
@click.pass_obj
def record(settings, payload):
    """Record one event given as JSON (see `mar schema`)."""
    from mar.importing import record_one

    with settings.store(write=True) as store:
        summary = record_one(store, settings.user, payload)
    if summary.added:
        click.echo(f"recorded {next(iter(summary.by_type))}")
    else:
        click.echo("already stored; nothing written")


@cli.command()
@click.argument("patient")
@click.option("--known-at", metavar="TIME",
              help="Only what the record showed at this recorded time (ISO 8601; without a UTC "
                   "offset, in the patient's time zone): events charted later, corrections included, "
                   "are left out.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of the stored events.")
@click.pass_obj
def history(settings, patient, known_at, as_json):
    """The PATIENT's events in the order they were stored, with clinical time,
    recorded time and who recorded them. Late entries (charted more than an hour
    after they happened) and corrections are marked, with who made them."""
    from mar.history import patient_history

    with settings.store() as store:
        events = patient_history(store, patient, known_at=known_at)
    if as_json:
        dump_json(events)
        return
    for e in events:
        click.echo(history_line(e))


def history_line(e: dict) -> str:
    from mar.history import describe, marks

    return (f"{e['version']:>5}  {e['effective_at']}  rec {e['recorded_at']} by {e['recorded_by']}  "
            f"{e['type']}  {describe(e)}{marks(e)}")


@cli.command()
def schema():
    """Print the JSON Schema of the event format."""
    from mar.events import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
