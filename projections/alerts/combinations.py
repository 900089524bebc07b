"""Medications that should not run together: an opioid with a benzodiazepine, and two
as-needed opioids (duplicate therapy). Orders count while active and not on hold; lines of
a discharge list count while the patient is on them.

Resolved once they no longer run together (stopped, held, ended by a transition) by the
time the record is read up to; not by death.
"""
from __future__ import annotations

from mar.catalog import BENZODIAZEPINE

from .model import Alert, Context
from .spans import first_overlap, items, last_overlap_end, parted

OPIOID_BENZO = "opioid_benzodiazepine"
DUPLICATE = "duplicate_opioid"


def check_opioid_benzodiazepine(ctx: Context) -> list[Alert]:
    """One alert per benzodiazepine order (or list line) that ran beside any opioid."""
    everything = items(ctx)
    opioids = [x for x in everything if ctx.is_opioid(x.drug)]
    out = []
    for benzo in everything:
        if not ctx.in_class(benzo.drug, (BENZODIAZEPINE,)) or ctx.is_opioid(benzo.drug):
            continue
        beside = [(at, o) for o in opioids if (at := first_overlap(benzo, o)) is not None]
        if not beside:
            continue
        at = min(t for t, _ in beside)
        names = "; ".join(o.label(t) for t, o in sorted(beside, key=lambda p: (p[0], p[1].key)))
        msg = (f"{benzo.label(at)} is active together with opioids from {ctx.local(at)}: {names}. "
               f"Opioids with benzodiazepines risk fatal respiratory depression (FDA boxed warning): "
               f"confirm both are needed, use the lowest doses, monitor sedation and respiratory rate.")
        evidence = [benzo.event_id, *(o.event_id for _, o in sorted(beside, key=lambda p: (p[0], p[1].key)))]
        ends = [(last_overlap_end(o, benzo), o) for _, o in beside]
        end = max(e for e, _ in ends)
        done = parted(ctx, [benzo, *(o for e, o in ends if e == end)], end, f"{benzo.drug} and opioids")
        out.append(ctx.alert(OPIOID_BENZO, (benzo.key,), benzo.drug, at, msg, evidence, resolution=done))
    return out


def check_duplicate_opioid(ctx: Context) -> list[Alert]:
    """One alert per pair of as-needed opioid orders (or list lines) active together."""
    prn = [x for x in items(ctx) if x.form == "as_needed" and ctx.is_opioid(x.drug)]
    out = []
    for i, a in enumerate(prn):
        for b in prn[i + 1:]:
            at = first_overlap(a, b)
            if at is None:
                continue
            first, second = sorted((a, b), key=lambda x: x.key)
            msg = (f"Two as-needed opioids active together from {ctx.local(at)}: {first.label(at)} and "
                   f"{second.label(at)}. Clarify which one to give for which pain, or stop one, "
                   f"to avoid double dosing.")
            drug = first.drug if first.drug == second.drug else f"{first.drug}, {second.drug}"
            both = f"the two {first.drug} orders" if first.drug == second.drug else f"{first.drug} and {second.drug}"
            done = parted(ctx, [first, second], last_overlap_end(first, second), both)
            out.append(ctx.alert(DUPLICATE, (first.key, second.key), drug, at, msg, [first.event_id, second.event_id],
                                 resolution=done))
    return out
