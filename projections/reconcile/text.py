"""The reconciliation as a nurse reads it: lines not reconciled first, each with its reason."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .items import Item, dosing_text

if TYPE_CHECKING:
    from . import Reconciliation


def reconciliation_text(r: "Reconciliation") -> str:
    s = r.sides
    head = f"{r.patient_id}: {'proposed ' if r.proposed else ''}{r.kind} at {r.local(r.at)}"
    if s.transition is not None:
        from . import where

        place = where(s.transition.data)
        head += f" ({'to' if r.kind in ('discharge', 'transfer') else 'at'} {place})" if place else ""
    out = [head, f"compared: {s.before_label} ({len(s.before)}) -> {s.after_label} ({len(s.after)})", ""]
    rows = [(x.status.upper() if not x.reconciled else x.status, x.drug,
             _side(x.before, r), _side(x.after, r)) for x in r.lines]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(("status", "drug", "before"))]
    out.append(f"{'status':<{widths[0]}}  {'drug':<{widths[1]}}  {'before':<{widths[2]}}  after")
    for x, row in zip(r.lines, rows):
        out.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
        pad = " " * (widths[0] + 2)
        for note in _details(x, r):
            out.append(f"{pad}{note}")
    out.append("")
    if r.reconciled:
        out.append(f"All {len(r.lines)} lines reconciled.")
    else:
        bad = r.unreconciled
        names = ", ".join(f"{x.drug} {x.status}" for x in bad)
        out.append(f"{len(bad)} of {len(r.lines)} lines not reconciled (omission or undocumented "
                   f"change): {names}.")
    return "\n".join(out)


def _side(item: Item | None, r: "Reconciliation") -> str:
    if item is None:
        return "-"
    text = dosing_text(item, r.catalog)
    if item.held:
        text += " (on hold)"
    return text


def _details(x, r: "Reconciliation") -> list[str]:
    out = []
    kinds = ", ".join(x.discrepancy)
    if x.documentation == "undocumented":
        out.append(f"{kinds}: no documented reason" if kinds else "no documented reason")
    elif x.reason:
        out.append(f"reason: {x.reason}")
    if x.missing_since is not None:
        out.append(f"missing since {r.local(x.missing_since)} (left off that discharge list without a reason)")
    out += [n for n in x.notes if not n.startswith("left off an earlier discharge list")]
    return out
