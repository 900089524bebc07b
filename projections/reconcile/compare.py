"""Pair the lines of two medication lists and classify every pair.

Statuses (the issue's words) and the reconciliation taxonomy beside them (Joint Commission
NPSG.03.06.01, MARQUIS):

| status | when | discrepancy | documentation |
|---|---|---|---|
| continued | on both lists, same dose, frequency, route and form | none | (none needed) |
| changed | on both lists, something differs | dose / frequency / route / form / rate | documented with a decision, else undocumented |
| new | only on the list after | commission | an order is its own documentation; a list line needs a decision |
| stopped | only on the list before, with a reason | omission | documented (a decision, or the order's discontinuation) |
| omitted | only on the list before, no reason | omission | undocumented |

A line is reconciled unless its documentation is "undocumented". Whether an undocumented
discrepancy was intended cannot be read from the record (MARQUIS: ask the prescriber), so
the two are not told apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from mar.catalog import Catalog

from .items import Item, differences, route_code

STATUSES = ("continued", "changed", "new", "stopped", "omitted")
KEEP = ("continue", "change")  # decisions that keep a medication on the list
DROP = ("stop", "hold")


@dataclass
class Line:
    drug: str
    status: str
    before: Item | None
    after: Item | None
    reason: str | None = None
    discrepancy: list[str] = field(default_factory=list)
    documentation: str | None = None  # documented, undocumented, or None (no discrepancy)
    notes: list[str] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    missing_since: int | None = None  # left off an earlier list without a reason, missing since then
    missing_item: Item | None = None  # what the patient was on before that

    @property
    def reconciled(self) -> bool:
        return self.documentation != "undocumented"


@dataclass(frozen=True)
class RecentStop:
    """An order discontinued shortly before the transition: a documented stop of its drug."""

    item: Item
    at: int
    reason: str | None


def compare(before: list[Item], after: list[Item], decisions: list[dict], catalog: Catalog, *,
            after_are_orders: bool, recent_stops: list[RecentStop] = ()) -> list[Line]:
    pairs, gone, came = pair(before, after, catalog)
    lines = [_paired(b, a, _decisions_for(decisions, b, a), catalog) for b, a in pairs]
    lines += [_gone(b, _decisions_for(decisions, b, None)) for b in gone]
    lines += [_came(a, _decisions_for(decisions, None, a), after_are_orders) for a in came]
    present = {x.drug for x in before} | {x.drug for x in after}
    seen: set[str] = set()
    for stop in recent_stops:
        if stop.item.drug in present or stop.item.drug in seen:
            continue
        seen.add(stop.item.drug)
        lines.append(Line(stop.item.drug, "stopped", stop.item, None, stop.reason or "discontinued",
                          ["omission"], "documented", ["order discontinued before the transition"]))
    return lines


def pair(before: list[Item], after: list[Item], catalog: Catalog
         ) -> tuple[list[tuple[Item, Item]], list[Item], list[Item]]:
    """(pairs, only before, only after). A line that carries an order id pairs with that
    order; the rest pair by drug, the closest match first (same route and form, then same
    route, then any)."""
    b_left, a_left = list(before), list(after)
    pairs: list[tuple[Item, Item]] = []

    def take(match: Callable[[Item, Item], bool]) -> None:
        for a in list(a_left):
            b = next((b for b in b_left if b.drug == a.drug and match(b, a)), None)
            if b is not None:
                pairs.append((b, a))
                b_left.remove(b)
                a_left.remove(a)

    take(lambda b, a: a.order_id is not None and a.order_id == b.order_id)
    take(lambda b, a: route_code(b.route, catalog) == route_code(a.route, catalog) and b.form == a.form)
    take(lambda b, a: route_code(b.route, catalog) == route_code(a.route, catalog))
    take(lambda b, a: True)
    return pairs, b_left, a_left


def _decisions_for(decisions: list[dict], b: Item | None, a: Item | None) -> list[dict]:
    drug = (b or a).drug  # type: ignore[union-attr]
    ids = {x.order_id for x in (b, a) if x is not None and x.order_id}
    out = []
    for d in decisions:
        if d["drug"].strip().lower() != drug:
            continue
        if d.get("order_id") and ids and d["order_id"] not in ids:
            continue
        out.append(d)
    return out


def _reasons(decisions: list[dict], actions: tuple[str, ...]) -> str | None:
    texts = [d["reason"] for d in decisions if d["action"] in actions and d.get("reason")]
    return "; ".join(texts) or None


def _paired(b: Item, a: Item, decisions: list[dict], catalog: Catalog) -> Line:
    kinds, notes = differences(b, a, catalog)
    keep = _reasons(decisions, KEEP)
    line = Line(a.drug, "changed" if kinds else "continued", b, a, keep, kinds, None, notes, decisions)
    if kinds:
        line.documentation = "documented" if keep else "undocumented"
    if _reasons(decisions, DROP) and not keep:
        # A documented stop, yet the medication is still on the list: a commission.
        line.notes.append("a decision stops it, but the list after still carries it")
        line.discrepancy = ["commission", *kinds]
        line.documentation = "undocumented"
        line.reason = _reasons(decisions, DROP)
    return line


def _gone(b: Item, decisions: list[dict]) -> Line:
    drop = _reasons(decisions, DROP)
    if drop:
        line = Line(b.drug, "stopped", b, None, drop, ["omission"], "documented", [], decisions)
        if any(d["action"] == "hold" for d in decisions):
            line.notes.append("held, not stopped: to be reviewed")
        return line
    line = Line(b.drug, "omitted", b, None, None, ["omission"], "undocumented", [], decisions)
    if _reasons(decisions, KEEP):
        line.notes.append(f"a decision keeps it ({_reasons(decisions, KEEP)}), but the list after leaves it out")
    return line


def _came(a: Item, decisions: list[dict], after_are_orders: bool) -> Line:
    keep = _reasons(decisions, KEEP)
    if after_are_orders:
        return Line(a.drug, "new", None, a, keep or a.indication, ["commission"], "documented",
                    [] if keep else ["a new order: its prescriber's decision"], decisions)
    drop = _reasons(decisions, DROP)
    line = Line(a.drug, "new", None, a, keep, ["commission"], "documented" if keep else "undocumented",
                [], decisions)
    if drop:
        line.notes.append(f"a decision stops it ({drop}), but the list after carries it")
        line.documentation = "undocumented"
    elif not keep:
        line.notes.append("on the list after with no active order and no documented decision")
    return line
