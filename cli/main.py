"""The `mar` command: parse options, call one library function, format the answer."""
from __future__ import annotations

import json
import os
import sys

import click

from mar.errors import MarError


class MarGroup(click.Group):
    """Turns every MarError into a clean message and its exit status, in one place."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MarError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code
            raise error from None


class Settings:
    def __init__(self, db: str, user: str | None, read_only: bool):
        self.db = db
        self.user = user
        self.read_only = read_only

    def store(self, write: bool = False):
        from mar.errors import WriteRefused
        from mar.store import EventStore

        if write and self.read_only:
            raise WriteRefused("the store is open read-only (--read-only or MAR_READ_ONLY=1); nothing was written")
        return EventStore(self.db, read_only=self.read_only)


@click.group(cls=MarGroup)
@click.option("--db", envvar="MAR_DB", default="mar.db", show_default=True,
              help="The event store: a SQLite file path or a postgresql:// URL (env MAR_DB).")
@click.option("--user", envvar="MAR_USER", help="Who is writing; required for every write (env MAR_USER).")
@click.option("--read-only", is_flag=True, envvar="MAR_READ_ONLY",
              help="Open the store read-only; every write fails (env MAR_READ_ONLY=1).")
@click.version_option(package_name="mar")
@click.pass_context
def cli(ctx: click.Context, db: str, user: str | None, read_only: bool) -> None:
    """mar: an event-sourced medication administration record.

    Every order, dose, transition and correction is an immutable event; regimens,
    totals and alerts are rebuilt from them.
    """
    ctx.obj = Settings(db, user, read_only)


def dump_json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


from cli import alerts, audit, commands, read, summary, transitions  # noqa: E402,F401  (register the commands)


def main() -> None:
    cli(prog_name="mar")


if __name__ == "__main__":
    main()
