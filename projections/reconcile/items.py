"""The lines of a medication list in one comparable shape, whatever list they come from.

An `Item` is one medication on one side of a transition: an inpatient order (as it stood at
that moment), a line of a discharge or proposed list, a home medication, or a line of what
another facility gave. `differences(a, b)` names what differs between two items of the
same drug, in the words of the reconciliation taxonomy (dose, frequency, route, form, rate).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mar.catalog import Catalog
from mar.units import MASS_TO_MG, RATE_TO_MG_PER_H

from ..report import dosing_fields

# Two amounts closer than this (relative) are the same dose: JSON round trips and unit
# conversions (g -> mg) must not create a discrepancy.
SAME = 1e-9


@dataclass
class Item:
    drug: str
    route: str
    dosing: dict
    source: str  # order, discharge list, home list, facility list, proposed list ...
    order_id: str | None = None
    indication: str | None = None
    note: str | None = None
    started: int | None = None  # epoch microseconds (orders)
    event_id: str | None = None
    held: bool = False
    sources: list[str] = field(default_factory=list)  # every list this drug appeared on

    @property
    def form(self) -> str:
        return self.dosing["form"]


def from_order(order, at: int) -> Item:
    """An order as it stood at clinical time `at` (changes up to `at` applied)."""
    state = order.state_at(at)
    return Item(order.drug, state.route, state.dosing, "order", order.order_id, order.indication,
                None, order.start, order.event_id, state.held)


def from_line(line: dict, source: str, event_id: str | None = None) -> Item:
    """A ListedMedication (as JSON) of a discharge, transfer, facility or proposed list."""
    return Item(line["drug"].strip().lower(), line["route"].strip().lower(), line["dosing"], source,
                line.get("order_id"), line.get("indication"), line.get("note"), None, event_id)


def from_listed(x) -> Item:
    """A line of a discharge list the patient is on (projections.course.Listed)."""
    return Item(x.drug, x.route, x.dosing, x.source, x.order_id, x.indication, x.note, x.start, x.event_id)


def from_home(e: dict) -> Item:
    return Item(e["drug"].strip().lower(), e["route"].strip().lower(), e["dosing"], "home list", None,
                e.get("indication"), e.get("note"), None, e.get("event_id"))


def mg(q: dict | None) -> float | None:
    return None if q is None else q["value"] * MASS_TO_MG[q["unit"]]


def rate_key(q: dict | None) -> tuple[float, bool] | None:
    """A rate as (value in mg/h or mg/kg/h, per kg): comparable across units."""
    if q is None:
        return None
    factor, per_kg = RATE_TO_MG_PER_H[q["unit"]]
    return (q["value"] * factor, per_kg)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= SAME * max(abs(a), abs(b), 1.0)


def _same_rate(a, b) -> bool:
    ka, kb = rate_key(a), rate_key(b)
    if ka is None or kb is None:
        return ka is None and kb is None
    return ka[1] == kb[1] and _same(ka[0], kb[0])


def same_frequency(a: str, b: str, catalog: Catalog) -> tuple[bool, str | None]:
    """(same, note). Different codes with the same doses per day (tid, q8h) count as the same
    frequency, with a note: the daily amount does not change."""
    fa, fb = catalog.frequency(a), catalog.frequency(b)
    ca = fa.code if fa else a.strip().lower()
    cb = fb.code if fb else b.strip().lower()
    if ca == cb:
        return True, None
    if fa and fb and fa.per_day is not None and fa.per_day == fb.per_day:
        return True, f"frequency written {ca} and {cb} (same number of doses per day)"
    return False, None


def route_code(text: str, catalog: Catalog) -> str:
    return catalog.route(text) or text.strip().lower()


def differences(a: Item, b: Item, catalog: Catalog) -> tuple[list[str], list[str]]:
    """What differs from a (before) to b (after): kinds among form, route, dose, frequency,
    rate; and notes about differences in spelling only."""
    kinds: list[str] = []
    notes: list[str] = []
    if route_code(a.route, catalog) != route_code(b.route, catalog):
        kinds.append("route")
    da, db = a.dosing, b.dosing
    if da["form"] != db["form"]:
        kinds.append("form")
        return kinds + _cross_form(da, db), notes
    form = da["form"]
    if form in ("scheduled", "as_needed"):
        if not _same(mg(da["dose"]), mg(db["dose"])):
            kinds.append("dose")
        same, note = same_frequency(da["frequency"], db["frequency"], catalog)
        if not same:
            kinds.append("frequency")
        elif note:
            notes.append(note)
        if form == "as_needed" and not _same(mg(da.get("max_daily")), mg(db.get("max_daily"))):
            if "dose" not in kinds:
                kinds.append("dose")
            notes.append("maximum per day differs")
    elif form == "infusion":
        if not _same_rate(da["rate"], db["rate"]):
            kinds.append("rate")
    else:  # pca
        if not _same(mg(da["demand_dose"]), mg(db["demand_dose"])) or \
                not _same(mg(da.get("limit")), mg(db.get("limit"))):
            kinds.append("dose")
        if not _same(da["lockout_minutes"], db["lockout_minutes"]):
            kinds.append("frequency")
        if not _same_rate(da.get("basal_rate"), db.get("basal_rate")):
            kinds.append("rate")
    return kinds, notes


def _cross_form(da: dict, db: dict) -> list[str]:
    """Across forms (scheduled <-> as needed), the dose and frequency still compare."""
    if {da["form"], db["form"]} <= {"scheduled", "as_needed"}:
        out = []
        if not _same(mg(da["dose"]), mg(db["dose"])):
            out.append("dose")
        if da["frequency"].strip().lower() != db["frequency"].strip().lower():
            out.append("frequency")
        return out
    return []


def describe(item: Item | None, catalog: Catalog, weight_kg: float | None = None) -> dict | None:
    """An item as JSON: the regimen's dosing fields plus where it comes from and a short text."""
    if item is None:
        return None
    out = {"drug": item.drug, "route": item.route}
    out.update(dosing_fields(item.dosing, catalog, weight_kg))
    out.update(text=dosing_text(item, catalog), source=item.source, order_id=item.order_id,
               indication=item.indication)
    if item.held:
        out["status"] = "on-hold"
    if item.note:
        out["note"] = item.note
    if len(item.sources) > 1:
        out["sources"] = list(item.sources)
    return out


def q(x: dict) -> str:
    return f"{x['value']:g} {x['unit']}"


def frequency_words(code: str, catalog: Catalog) -> str:
    f = catalog.frequency(code)
    return f.name if f else code


def dosing_text(item: Item, catalog: Catalog) -> str:
    """'10 mg po twice daily', '30 mg po every 4 hours as needed', 'po infusion 5 mg/h'."""
    d = item.dosing
    form = d["form"]
    if form == "scheduled":
        return f"{q(d['dose'])} {item.route} {frequency_words(d['frequency'], catalog)}"
    if form == "as_needed":
        cap = f" (max {q(d['max_daily'])}/day)" if d.get("max_daily") else ""
        why = f" for {d['prn_reason']}" if d.get("prn_reason") else ""
        return f"{q(d['dose'])} {item.route} {frequency_words(d['frequency'], catalog)} as needed{why}{cap}"
    if form == "infusion":
        return f"{item.route} infusion {q(d['rate'])}"
    basal = f", basal {q(d['basal_rate'])}" if d.get("basal_rate") else ""
    limit = f", limit {q(d['limit'])}/{d.get('limit_hours') or '?'} h" if d.get("limit") else ""
    return f"{item.route} PCA demand {q(d['demand_dose'])}, lockout {d['lockout_minutes']:g} min{basal}{limit}"
