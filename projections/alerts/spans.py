"""When medications were really running: orders minus their holds, and discharge-list lines.

An "item" is anything a patient was on over a span of clinical time: an order (active and
not on hold) or a line of a discharge list. The combination rules (opioid with
benzodiazepine, two as-needed opioids) compare items' spans.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..course import Listed, Order
from .model import Context, Resolution, listed_label, order_label


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


def overlaps(a: Item, b: Item):
    """The [start, end) pieces of time both items were running."""
    for s1, e1 in a.spans:
        for s2, e2 in b.spans:
            lo, hi = max(s1, s2), min(e1, e2)
            if lo < hi:
                yield lo, hi


def first_overlap(a: Item, b: Item) -> int | None:
    """The first instant both items were running, or None."""
    return min((lo for lo, _ in overlaps(a, b)), default=None)


def last_overlap_end(a: Item, b: Item) -> int | None:
    """The instant the two items stopped running together for the last time (an exclusive end:
    past the record's end if they still run together), or None if they never did."""
    return max((hi for _, hi in overlaps(a, b)), default=None)


ENDED = {"discontinued": "stopped", "discharged": "ended by the discharge", "admitted": "ended by the admission",
         "readmitted": "ended by the readmission", "transferred": "ended by the transfer"}


def parted(ctx: Context, together: list[Item], end: int | None, what: str) -> Resolution | None:
    """A resolution at `end`, when the items that ran together there stopped doing so by the
    record's end: what stopped, held or ended the first of them (else the others). None if
    they still run together, or if only the patient's death parted them (nothing was put right)."""
    if end is None or end > ctx.until or ctx.course.died_at == end:
        return None
    for group in ([together[0]], together[1:]):
        ended = [(item, how) for item in group if (how := _how_ended(ctx, item, end)) is not None]
        if ended:
            why = "; ".join(f"{item.drug} {how[0]}" for item, how in ended)
            evidence = tuple(dict.fromkeys(how[1] for _, how in ended if how[1]))
            return Resolution(end, f"{what} no longer run together: {why}", evidence)
    return None


def _how_ended(ctx: Context, item: Item, at: int) -> tuple[str, str | None] | None:
    if not any(e == at for _, e in item.spans):
        return None
    if item.order is not None:
        o = item.order
        if o.end == at:
            word = ENDED.get(o.ended_by or "", o.ended_by or "ended")
            reason = o.end_reason or _decision(ctx, o.drug, o.order_id, at)
            return f"{word}{f' ({reason})' if reason else ''}", o.end_event_id
        held = next((ch for ch in o.changes if ch.at == at and ch.kind == "held"), None)
        return ("held", held.event_id) if held is not None else None
    x = item.listed
    tr = next((t for t in ctx.course.transitions if t.at == at), None)
    return (f"list line {ENDED.get(x.ended_by or '', 'ended')}", tr.event_id if tr else None)


def _decision(ctx: Context, drug: str, order_id: str, at: int) -> str | None:
    """'decided: stop, anxiety settled' when the transition at `at` decided about the drug."""
    for tr in ctx.course.transitions:
        if tr.at == at:
            for d in tr.data.get("decisions") or ():
                if d.get("order_id") == order_id or d["drug"].lower() == drug:
                    return f"decided: {d['action']}, {d['reason']}"
    return None
