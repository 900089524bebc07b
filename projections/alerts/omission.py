"""Unreconciled stop at a transition (the memantine rule).

At a discharge, a transfer with a medication list, or a readmission with one, every
medication active just before it (an order, or a line of the last discharge list) must be
either carried over (a line of the transition's list with the same drug or naming the
order) or stopped with a documented reason: an `order_discontinued` at or before the
transition, or a decision of the transition with action stop, change or hold for that
drug or order. Anything else was dropped without anyone deciding to: one alert per
medication. A readmission without a list is left to the admission rule, which compares
the last discharge list with the new orders.

Resolved by the first later sign that the drug was taken up again or decided about: an
order for it written after the transition, a later transition's list that carries it, or a
later transition's decision to stop, change or hold it (the reason says how long after).
"""
from __future__ import annotations

from ..course import Transition
from .model import Alert, Context, Resolution, listed_label, order_label

RULE = "unreconciled_stop"
DOCUMENTED = ("stop", "change", "hold")
WORDS = {"discharged": "discharge", "transferred": "transfer", "readmitted": "readmission", "admitted": "admission"}


def check(ctx: Context) -> list[Alert]:
    kinds = set(ctx.settings.rule(RULE)["transitions"])
    stopped = _discontinued(ctx)
    out = []
    for tr in ctx.course.transitions:
        lines = tr.data.get("medication_list")
        if tr.kind not in kinds or lines is None:
            continue
        carried_drugs = {line["drug"].lower() for line in lines}
        carried_orders = {line["order_id"] for line in lines if line.get("order_id")}
        decisions = [d for d in tr.data.get("decisions") or () if d["action"] in DOCUMENTED]
        for order_id in tr.active_orders_before:
            order = ctx.course.orders[order_id]
            if order.drug in carried_drugs or order_id in carried_orders:
                continue
            if stopped.get(order_id, tr.at + 1) <= tr.at or _decided(decisions, order.drug, order_id):
                continue
            out.append(_alert(ctx, tr, order.drug, (tr.event_id, order_id), order_label(order, tr.at - 1),
                              [tr.event_id, order.event_id]))
        for x in tr.active_listed_before:
            if x.drug in carried_drugs or _decided(decisions, x.drug, x.order_id):
                continue
            out.append(_alert(ctx, tr, x.drug, (tr.event_id, x.event_id, x.index), listed_label(x),
                              [tr.event_id, x.event_id]))
    return out


def _discontinued(ctx: Context) -> dict[str, int]:
    """order id -> clinical time of its discontinuation, including one charted at the very
    instant of a transition (the course ignores it there: the transition ended the order first)."""
    return {e["order_id"]: t for t, e in reversed(ctx.by_type("order_discontinued"))}


def _decided(decisions: list[dict], drug: str, order_id: str | None) -> bool:
    return any((d.get("order_id") and d["order_id"] == order_id) or d["drug"].lower() == drug for d in decisions)


def _alert(ctx: Context, tr: Transition, drug: str, keys: tuple, label: str, evidence: list[str]) -> Alert:
    word = WORDS.get(tr.kind, tr.kind)
    where = tr.data.get("destination") or tr.data.get("to_location") or tr.data.get("location") or ""
    where = f" to {where}" if tr.kind != "readmitted" and where else ""
    msg = (f"{label} was active before the {word}{where} at {ctx.local(tr.at)}, but the {word} list "
           f"does not carry it over and no decision stops it. Ask the prescriber whether it should "
           f"continue: if so, add it to the list and tell the receiving team; if not, document the stop.")
    return ctx.alert(RULE, keys, drug, tr.at, msg, evidence, resolution=taken_up(ctx, tr, drug))


def taken_up(ctx: Context, tr: Transition, drug: str) -> Resolution | None:
    """The first sign after transition `tr` that `drug` was ordered again, carried on a list,
    or decided about (None if there is none by the time the record is read up to)."""
    found: list[tuple[int, int, str, tuple[str, ...]]] = []  # (time, rank, what, evidence)
    for o in ctx.course.orders.values():
        if o.drug == drug and o.start >= tr.at and o.order_id not in tr.active_orders_before:
            found.append((o.start, 0, f"ordered again {{gap}}: {order_label(o, o.start)}", (o.event_id,)))
    for later in ctx.course.transitions:
        if later.at <= tr.at:
            continue
        name = WORDS.get(later.kind, later.kind)
        if any(line["drug"].lower() == drug for line in later.data.get("medication_list") or ()):
            found.append((later.at, 1, f"carried on the list of the {name} {{gap}}", (later.event_id,)))
        for d in later.data.get("decisions") or ():
            if d["drug"].lower() == drug and d["action"] in DOCUMENTED:  # as the rule: continue is no decision
                found.append((later.at, 2, f"decided about at the {name} {{gap}}: {d['action']} ({d['reason']})",
                              (later.event_id,)))
    found = [x for x in found if x[0] <= ctx.until]
    if not found:
        return None
    at, _, what, evidence = min(found)
    gap = f"{ctx.after(tr.at, at)} after the {WORDS.get(tr.kind, tr.kind)}"
    return Resolution(at, f"{drug} {what.replace('{gap}', gap, 1)}", evidence)  # no format(): free text
