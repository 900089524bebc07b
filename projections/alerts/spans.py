"""When medications were really running: orders minus their holds, and discharge-list lines.

An "item" is anything a patient was on over a span of clinical time: an order (active and
not on hold) or a line of a discharge list. The combination rules (opioid with
benzodiazepine, two as-needed opioids) compare items' spans.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..course import Listed, Order
from .model import Context, listed_label, order_label


@dataclass(frozen=True)
class Item:
    key: str  # order id, or "<discharge event id>#<line>"
    drug: str
    form: str
    spans: tuple[tuple[int, int], ...]  # [start, end) pieces, in order
    event_id: str  # the order's or the list's event
    order: Order | None
    listed: Listed | None

    def label(self, at: int) -> str:
        return order_label(self.order, at) if self.order is not None else listed_label(self.listed)


def order_spans(order: Order, until: int) -> list[tuple[int, int]]:
    """[start, end) pieces while the order was active and not on hold, up to `until` included
    (an order written at the last instant charted is running at that instant)."""
    end = min(order.end if order.end is not None else until + 1, until + 1)
    out, start, held = [], order.start, False
    for ch in order.changes:
        if ch.at >= end:
            break
        if ch.kind == "held" and not held:
            if ch.at > start:
                out.append((start, ch.at))
            held = True
        elif ch.kind == "resumed" and held:
            start, held = ch.at, False
    if not held and end > start:
        out.append((start, end))
    return out


def items(ctx: Context) -> list[Item]:
    key = ("items",)
    if key not in ctx._cache:
        found = []
        for o in sorted(ctx.course.orders.values(), key=lambda o: (o.start, o.seq)):
            spans = order_spans(o, ctx.until)
            if spans:
                found.append(Item(o.order_id, o.drug, o.form, tuple(spans), o.event_id, o, None))
        for x in ctx.course.listed:
            end = min(x.end if x.end is not None else ctx.until + 1, ctx.until + 1)
            if end > x.start:
                found.append(Item(f"{x.event_id}#{x.index}", x.drug, x.dosing["form"], ((x.start, end),),
                                  x.event_id, None, x))
        ctx._cache[key] = found
    return ctx._cache[key]


def first_overlap(a: Item, b: Item) -> int | None:
    """The first instant both items were running, or None."""
    best = None
    for s1, e1 in a.spans:
        for s2, e2 in b.spans:
            lo, hi = max(s1, s2), min(e1, e2)
            if lo < hi and (best is None or lo < best):
                best = lo
    return best
