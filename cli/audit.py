"""mar audit commands (registered by cli.main): verify, export, diff, keygen."""
from __future__ import annotations

import json
import sys

import click

from cli.main import cli, dump_json


@cli.command()
@click.option("--json", "as_json", is_flag=True,
              help="The report as JSON, with every stream head and one store head to anchor elsewhere.")
@click.option("--anchor", "anchor_file", type=click.Path(exists=True, dir_okay=False),
              help="An earlier `mar verify --json` output: each head in it must still be in the store, "
                   "with the same link.")
@click.pass_obj
def verify(settings, as_json, anchor_file):
    """Check the tamper-evidence chain of every stored event.

    Every break — a row changed, deleted, reordered or inserted — is reported with its
    position (notification id, patient stream, version). Exit status: 0 when every link
    holds, 1 when any is broken, 2 when the store cannot be verified as asked (a keyed
    store without MAR_HMAC_KEY, or a wrong key).
    """
    from mar.audit import verify as verify_store

    anchors = _anchors(anchor_file) if anchor_file else ()
    with _reading(settings) as store:
        report = verify_store(store, anchors)
    if as_json:
        dump_json(report.to_dict())
    else:
        for brk in report.breaks:
            click.echo(f"BROKEN {brk}")
        if report.breaks_total > len(report.breaks):
            click.echo(f"... and {report.breaks_total - len(report.breaks)} more breaks")
        click.echo(_summary(report))
    sys.exit(0 if report.ok else 1)


def _reading(settings):
    """The store opened read-only: an audit command never writes, and a mistyped --db is an
    error, not a new empty store that verifies."""
    from mar.store import EventStore

    return EventStore(settings.db, read_only=True)


def _summary(report) -> str:
    streams = f"{report.streams} stream{'s' if report.streams != 1 else ''}"
    what = f"{report.events} events in {streams} ({report.chain} chain)"
    anchors = f", {report.anchors_checked} anchored heads checked" if report.anchors_checked else ""
    if report.ok:
        return f"verified {what}{anchors}: every link holds\nstore head {report.store_head}"
    return f"{what}{anchors}: {report.breaks_total} break{'s' if report.breaks_total != 1 else ''}"


def _anchors(path: str) -> list[dict]:
    from mar.errors import MarError

    try:
        with open(path, encoding="utf-8") as fh:
            heads = json.load(fh)["heads"]
        return [{"stream": h["stream"], "version": int(h["version"]), "chain": h["chain"]} for h in heads]
    except (ValueError, KeyError, TypeError) as exc:
        raise MarError(f"{path}: not the output of `mar verify --json` ({exc})") from None


@cli.command()
@click.argument("patient", required=False)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "fhir"]), default="jsonl", show_default=True,
              help="jsonl: one stored event per line, as `mar import` reads it back. fhir: one FHIR R5 "
                   "Bundle, each event's resource and its Provenance (docs/fhir.md).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file (created readable by its owner only) instead of standard output.")
@click.pass_obj
def export(settings, patient, fmt, output):
    """Export every stored event, or PATIENT's, in store order.

    Each line is the event as stored — clinical time, recorded time and recorder,
    the store's event id, append time and writing user — with its stream version,
    content digest and chain link. `mar import` of an export into an empty store gives
    the same events; see docs/audit.md. With --format fhir: one FHIR R5 Bundle, each
    event's resource and a Provenance carrying its times, users and chain link
    (docs/fhir.md; for FHIR readers, not read back by `mar import`).
    """
    from mar.export import export_events, private_output, write_jsonl

    if fmt == "fhir":
        return _export_fhir(settings, patient, output)
    with _reading(settings) as store:
        lines = export_events(store, patient)
        if output:
            with private_output(output) as fh:
                count = write_jsonl(lines, fh)
            click.echo(f"exported {count} events to {output}", err=True)
        else:
            write_jsonl(lines, sys.stdout.buffer)


def _export_fhir(settings, patient, output) -> None:
    from mar.export import private_output
    from mar.export_fhir import export_fhir

    with _reading(settings) as store:
        bundle = export_fhir(store, patient)
    data = json.dumps(bundle, ensure_ascii=False, indent=1).encode() + b"\n"
    if output:
        with private_output(output) as fh:
            fh.write(data)
        click.echo(f"exported {_events(bundle)} events "
                   f"({len(bundle['entry'])} resources) to {output}", err=True)
    else:
        sys.stdout.buffer.write(data)


def _events(bundle: dict) -> int:
    return sum(e["resource"]["resourceType"] == "Provenance" for e in bundle["entry"])


@cli.command()
@click.argument("patient")
@click.option("--known-at", "known_at", metavar="TIME", multiple=True, required=True,
              help="Two recorded moments, earliest first (ISO 8601; without a UTC offset, in the "
                   "patient's time zone).")
@click.option("--json", "as_json", is_flag=True, help="The events as JSON.")
@click.pass_obj
def diff(settings, patient, known_at, as_json):
    """What changed in PATIENT's record between two recorded moments.

    Lists the events recorded after the first --known-at and by the second (late
    charting and corrections included), and the earlier events entered in error
    in between.
    """
    from mar.history import record_diff

    if len(known_at) != 2:
        raise click.UsageError("give --known-at exactly twice: the earlier moment, then the later one")
    with _reading(settings) as store:
        changes = record_diff(store, patient, *known_at)
    if as_json:
        dump_json(changes)
        return
    _echo_diff(changes)


def _echo_diff(changes: dict) -> None:
    from cli.commands import history_line
    from mar.history import describe

    added, voided = changes["added"], changes["entered_in_error"]
    click.echo(f"{changes['patient_id']}: recorded after {changes['since']} and by {changes['until']}: "
               f"{len(added)} event{'s' if len(added) != 1 else ''}, "
               f"{len(voided)} entered in error")
    for e in added:
        click.echo(f"+{history_line(e)}")
    for e in voided:
        c = e["entered_in_error_by"]
        click.echo(f"-{e['version']:>5}  {e['effective_at']}  {e['type']}  {describe(e)}  "
                   f"entered in error by {c['recorded_by']} at {c['recorded_at']}: {c['reason']}")


@cli.command()
def keygen():
    """Print a new random key for MAR_CIPHER_KEY or MAR_HMAC_KEY.

    The key is base64 of 32 random bytes (AES-256). Use a different key for each. Keep keys outside the store: without MAR_CIPHER_KEY
    an encrypted store cannot be read, and without MAR_HMAC_KEY a keyed store cannot be
    written or verified.
    """
    from mar.security import new_key

    click.echo(new_key())
