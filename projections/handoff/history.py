"""Why a medication matters, from the record: when and why it was started, its dose changes
with their reasons, what other orders' reasons say about it, and earlier omissions.

Only charted words are used (indications, reasons, notes); nothing is paraphrased.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from projections.course import Course, Order

from ..reconcile.items import q

MAX_CHANGES = 3
MAX_MENTIONS = 4


@dataclass(frozen=True)
class Fact:
    at: int
    text: str


def why_it_matters(course: Course, drug: str, events_by_id: dict[str, dict], local, until: int,
                   omissions: list[tuple[int, int | None]] = ()) -> list[str]:
    """Short facts, oldest first. omissions: (left off at, restarted at or None)."""
    orders = sorted((o for o in course.orders.values() if o.drug == drug and o.start <= until),
                    key=lambda o: (o.start, o.order_id))
    facts: list[Fact] = []
    if orders:
        first = orders[0]
        why = f" for {first.indication}" if first.indication else ""
        facts.append(Fact(first.start, f"first ordered {local(first.start)}{why}"))
    changes = [f for o in orders for f in _dose_changes(o, until, local)]
    facts += changes[-MAX_CHANGES:]
    facts += _mentions(course, drug, until, local)[-MAX_MENTIONS:]
    for left, back in omissions:
        text = f"left off the discharge list of {local(left)} without a documented reason"
        if back is not None:
            days = (back - left) / 86_400_000_000
            text += f"; restarted {local(back)} ({days:.0f} days without it)"
        facts.append(Fact(left, text))
    for o in orders[-1:]:
        note = events_by_id.get(o.event_id, {}).get("note")
        if note:
            facts.append(Fact(o.start, f"order note: {note}"))
    return [f.text for f in sorted(facts, key=lambda f: f.at)]


def _dose_changes(order: Order, until: int, local) -> list[Fact]:
    out = []
    for ch in order.changes:
        if ch.at > until or ch.kind != "changed":
            continue
        before = order.state_at(ch.at - 1).dosing
        what = ", ".join(_changed(k, before.get(k), v) for k, v in ch.fields.items())
        reason = f": {ch.reason}" if ch.reason else ""
        out.append(Fact(ch.at, f"{local(ch.at)} {what}{reason}"))
    return out


def _changed(key: str, old, new) -> str:
    def show(x):
        return q(x) if isinstance(x, dict) else str(x)
    name = key.replace("_", " ")
    return f"{name} {show(old)} -> {show(new)}" if old is not None else f"{name} {show(new)}"


def _mentions(course: Course, drug: str, until: int, local) -> list[Fact]:
    """Reasons given on other drugs' orders that name this drug."""
    word = re.compile(rf"\b{re.escape(drug)}\b", re.IGNORECASE)
    out = []
    for o in course.orders.values():
        if o.drug == drug:
            continue
        for ch in o.changes:
            if ch.at <= until and ch.reason and word.search(ch.reason):
                what = {"discontinued": "stopped", "changed": "changed", "rate": "rate changed",
                        "held": "held", "resumed": "resumed"}[ch.kind]
                out.append(Fact(ch.at, f"{local(ch.at)} {o.drug} {what}: {ch.reason}"))
    return sorted(out, key=lambda f: f.at)
