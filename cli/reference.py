"""Write docs/cli.md from the commands' own help, so the reference cannot drift.

Run: python -m cli.reference > docs/cli.md (a test checks the file is current).
"""
from __future__ import annotations

import click

from cli.main import cli

HEAD = """# CLI reference

Generated from `mar --help` and each command's `--help` by `python -m cli.reference`
(a test fails when this page is out of date). Global options go before the command:
`mar --db store.db --user rn.lee import events.jsonl`.

Exit status: 0 success; 1 an error (the message says what and nothing was written);
2 a usage error; 3 `mar reconcile` found an omission or an undocumented change.
"""


def render() -> str:
    parts = [HEAD, "## mar", "", "```", _help(cli, ["mar"]), "```", ""]
    ctx = click.Context(cli, info_name="mar")
    for name in sorted(cli.list_commands(ctx)):
        cmd = cli.get_command(ctx, name)
        parts += [f"## mar {name}", "", "```", _help(cmd, ["mar", name]), "```", ""]
    return "\n".join(parts)


def _help(cmd: click.Command, path: list[str]) -> str:
    parent = None
    for name in path[:-1]:
        parent = click.Context(cli, info_name=name, parent=parent)
    ctx = click.Context(cmd, info_name=path[-1], parent=parent, terminal_width=100, max_content_width=100)
    return cmd.get_help(ctx).rstrip()


if __name__ == "__main__":
    print(render(), end="")
