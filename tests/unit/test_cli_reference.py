"""docs/cli.md is the commands' own help: regenerate it when a command changes."""
from pathlib import Path

from cli.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_current():
    assert DOC.read_text() == render(), "docs/cli.md is stale: run python -m cli.reference > docs/cli.md"


def test_every_command_is_in_the_reference():
    text = DOC.read_text()
    for name in ("import", "record", "history", "schema", "regimen", "totals", "alerts", "ack",
                 "plot", "reconcile", "handoff", "mme", "verify", "export", "diff", "summary", "project"):
        assert f"## mar {name}\n" in text
