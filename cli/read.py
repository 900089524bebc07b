"""mar read commands (registered by cli.main): regimen, totals, project."""
from __future__ import annotations

import click

from cli.main import cli, dump_json

TIME_HELP = "ISO 8601; without a UTC offset, in the patient's time zone."


def _num(x) -> str:
    return "-" if x is None else f"{x:g}"


@cli.command()
@click.argument("patient")
@click.option("--at", metavar="TIME", help="Clinical time to read the regimen at (default: now). " + TIME_HELP)
@click.option("--known-at", metavar="TIME", help="Only what the record showed at this recorded time: events "
              "charted later, corrections included, are left out. " + TIME_HELP)
@click.option("--json", "as_json", is_flag=True, help='JSON: {"patient_id", "at", "medications": [...]}.')
@click.pass_obj
def regimen(settings, patient, at, known_at, as_json):
    """Every active medication of PATIENT at a clinical time: orders (with dose or rate,
    frequency, PCA settings, start, last change and its reason, indication) and, after a
    discharge, the lines of the discharge list. Corrections (entered in error) are honoured."""
    from projections.queries import StoreRef, regimen_at

    result = regimen_at(StoreRef(settings.db, settings.read_only), patient, at, known_at)
    if as_json:
        dump_json(result)
        return
    for line in regimen_text(result):
        click.echo(line)


def regimen_text(result: dict) -> list[str]:
    head = f"{result['patient_id']}: regimen at {result['at']}"
    if result.get("known_at"):
        head += f" as known at {result['known_at']}"
    lines = [head]
    if not result["medications"]:
        lines.append("  no active medication")
    for m in result["medications"]:
        lines.append("  " + medication_text(m))
    return lines


def medication_text(m: dict) -> str:
    what = f"{m['drug']} {m['route']}"
    if m["form"] in ("scheduled", "as_needed"):
        what += f" {_num(m['dose'])} {m['unit']} {m['frequency']}" + (" as needed" if m["as_needed"] else "")
    elif m["form"] == "infusion":
        what += f" infusion {_num(m['rate'])} {m['rate_unit']}" if m["rate"] is not None else " infusion (no rate)"
    else:
        pca = m["pca"]
        what += f" PCA demand {_num(pca['demand_dose']['value'])} {pca['demand_dose']['unit']}, lockout " \
                f"{_num(pca['lockout_minutes'])} min"
        if m["rate"] is not None:
            what += f", basal {_num(m['rate'])} {m['rate_unit']}"
    if m.get("weight_kg") is not None and m.get("rate_mg_per_h") is not None:
        what += f" = {m['rate_mg_per_h']:.3g} mg/h at {_num(m['weight_kg'])} kg"
    source = f"order {m['order_id']}" if m["source"] == "order" else m["source"]
    what += f"  [{m['status']}; {source}; since {m['started_at']}]"
    if m.get("last_change"):
        ch = m["last_change"]
        what += f"  last change {ch['at']}: {ch['what']}" + (f" ({ch['reason']})" if ch["reason"] else "")
    if m.get("indication"):
        what += f"  for {m['indication']}"
    return what


@cli.command()
@click.argument("patient")
@click.option("--from", "first", metavar="DATE", help="First local calendar day (YYYY-MM-DD).")
@click.option("--to", "last", metavar="DATE", help="Last local calendar day (YYYY-MM-DD).")
@click.option("--by", type=click.Choice(["day", "hour"]), default="day", show_default=True,
              help="Per local calendar day or per local clock hour.")
@click.option("--mme-table", metavar="NAME", help="Opioid conversion table (default cdc-2022; see `mar mme-tables`).")
@click.option("--at", metavar="TIME", help="Count only what was given by this clinical time. " + TIME_HELP)
@click.option("--known-at", metavar="TIME", help="Only what the record showed at this recorded time. " + TIME_HELP)
@click.option("--json", "as_json", is_flag=True,
              help='JSON: {"patient_id", "timezone", "mme_table", "days": [{"date", "mme", "drugs": [...]}]}.')
@click.pass_obj
def totals(settings, patient, first, last, by, mme_table, at, known_at, as_json):
    """Amounts given to PATIENT per local day (or hour), per drug and route, in mg, with
    morphine milligram equivalents (MME) for opioids. Infusions and PCA basal rates are
    integrated over time and split exactly at the day or hour boundaries (23- and 25-hour
    days included); discrete doses count at their clinical time."""
    from projections.queries import StoreRef, totals_for

    result = totals_for(StoreRef(settings.db, settings.read_only), patient, first, last, by, mme_table, at,
                        known_at)
    if as_json:
        dump_json(result)
        return
    for line in totals_text(result):
        click.echo(line)


def totals_text(result: dict) -> list[str]:
    lines = [f"{result['patient_id']}: amounts per local {result['by']} ({result['timezone']}), "
             f"MME table {result['mme_table']} ({result['mme_table_edition']})"]
    for d in result["days"]:
        when = d["date"] if "hour" not in d else f"{d['date']} {d['hour']:02d}h ({d['start'][11:]})"
        lines.append(f"{when}  MME {_num(d['mme'])}" + ("  (no factor: " + ", ".join(d["mme_missing"]) + ")"
                                                         if d.get("mme_missing") else ""))
        for x in d["drugs"]:
            mme = f"  MME {_num(x['mme'])}" if x["mme"] is not None else ""
            lines.append(f"  {x['drug']:<15} {x['route']:<4} {_num(x['amount']):>12} {x['unit']}{mme}")
    if not result["days"]:
        lines.append("  nothing given")
    for u in result.get("uncounted", []):
        lines.append(f"NOT COUNTED: {u['drug']} {u['route']} {u['rate']} {u['rate_unit']} from {u['from']}: {u['reason']}")
    return lines


@cli.command("mme-tables")
@click.option("--json", "as_json", is_flag=True, help="Every table with its factors and sources.")
def mme_tables(as_json):
    """The opioid conversion (MME) tables: shipped ones and a site's (MAR_MME_TABLES)."""
    from projections.mme import DEFAULT_TABLE, tables

    found = tables()
    if as_json:
        dump_json([t.describe() for t in found.values()])
        return
    for name in sorted(found):
        t = found[name]
        mark = " (default)" if name == DEFAULT_TABLE else ""
        click.echo(f"{name}{mark}: {t.title}; edition {t.edition}; {t.origin}")


@cli.command()
@click.option("--rebuild", is_flag=True, help="Drop the read models and project every event again.")
@click.option("--follow", is_flag=True, help="Keep going: apply new events as they are stored, until "
              "SIGINT (Ctrl-C) or SIGTERM.")
@click.option("--interval", type=click.FloatRange(min=0.01), metavar="SECONDS",
              help="With --follow on SQLite: seconds between looks at the store (default 0.2).")
@click.option("-q", "--quiet", is_flag=True, help="With --follow: print only the summary.")
@click.pass_obj
def project(settings, rebuild, follow, interval, quiet):
    """Bring the read models (a SQLite database beside the store, or MAR_PROJECTIONS) up to
    date with the store. Read commands do this themselves before answering.

    With --follow (after --rebuild, if given) it keeps them up to date as events are stored,
    exactly once, until SIGINT or SIGTERM stop it after the current transaction (exit 0; a
    second signal stops it at once, the transaction rolling back). A PostgreSQL store notifies
    it at each commit; a SQLite store is looked at every --interval seconds. It prints a line
    per catch-up that applied events ("+3 events, position 1204, 5 ms": how many, the read
    models' position, the time taken), a line when it starts following, and a summary when
    stopped; --quiet prints only the summary. If the store stops answering (a server restart,
    a network cut) it says so on stderr and tries again after 1, 2, 4 ... up to 30 s."""
    if not follow and (interval is not None or quiet):
        raise click.UsageError("--interval and --quiet go with --follow")
    if follow:
        return _follow(settings, rebuild, interval, quiet)
    from projections.queries import project as run

    with settings.store() as store:
        result = run(store, rebuild)
    verb = "rebuilt from" if rebuild else "caught up with"
    click.echo(f"{result['path']}: {verb} {result['events']} event{'s' if result['events'] != 1 else ''} "
               f"in {result['seconds']:.2f} s (positions: "
               + ", ".join(f"{k} {v}" for k, v in sorted(result["positions"].items())) + ")")


def _follow(settings, rebuild: bool, interval: float | None, quiet: bool) -> None:
    from projections.follow import INTERVAL, follow

    def applied(a) -> None:
        click.echo(f"+{a.events} event{'s' if a.events != 1 else ''}, position {a.position}, "
                   f"{a.seconds * 1000:.0f} ms")

    def started(f) -> None:
        how = "notified by PostgreSQL" if f.interval is None else f"looking every {f.interval:g} s"
        click.echo(f"{f.path}: following at position {f.position} ({how}); Ctrl-C or SIGTERM stops")

    def lost(error, seconds: float) -> None:
        click.echo(f"{error}; trying again in {seconds:g} s", err=True)

    with settings.store() as store:
        s = follow(store, interval=interval or INTERVAL, rebuild=rebuild,
                   on_catch_up=None if quiet else applied, on_start=None if quiet else started, on_lost=lost)
    click.echo(f"{s.path}: stopped{' by ' + s.stopped_by if s.stopped_by else ''} at position {s.position} "
               f"after {s.seconds:.1f} s: {s.events} event{'s' if s.events != 1 else ''} "
               f"in {s.catch_ups} catch-up{'s' if s.catch_ups != 1 else ''}")
