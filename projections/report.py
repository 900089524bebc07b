"""The answers of the read commands, as JSON-ready dicts: the regimen at a time, the totals.

Shapes (agreed with shared/hooks/refcheck.py):
- regimen: {"patient_id", "at", "medications": [{"order_id", "drug", "route", "dose", "unit",
  "frequency", "rate", "rate_unit", "as_needed", "status", "started_at", ...}]}
- totals: {"patient_id", "timezone", "mme_table", "days": [{"date", "mme", "drugs":
  [{"drug", "route", "amount", "unit", "mme"}]}]}; hourly entries also carry "hour".
"""
from __future__ import annotations

import math
from collections import defaultdict
from datetime import date
from typing import Iterable
from zoneinfo import ZoneInfo

from mar.catalog import Catalog, default_catalog

from .course import Course, Listed, Order, is_weight_based, rate_mg_per_h
from .mme import MmeTable
from .timeline import US_PER_HOUR, day_bounds, iso
from .totals import Amount

PRECISION = 6  # decimals in JSON answers (amounts in mg: a nanogram is far below any dose)


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    r = round(x, PRECISION)
    return int(r) if r == int(r) and abs(r) < 1e15 else r


# --- regimen --------------------------------------------------------------------------------


def regimen(course: Course, at: int, tz: ZoneInfo, catalog: Catalog | None = None) -> dict:
    """Every active (or on-hold) medication at clinical time `at`: orders, then listed lines."""
    catalog = catalog or default_catalog()
    meds = [order_entry(o, at, course, tz, catalog)
            for o in sorted(course.active_orders(at), key=lambda o: (o.drug, o.start, o.order_id))]
    meds += [listed_entry(x, tz, catalog)
             for x in sorted(course.active_listed(at), key=lambda x: (x.drug, x.start, x.index))]
    return {"patient_id": course.patient_id, "at": iso(at, tz), "timezone": str(tz.key),
            "medications": meds}


def dosing_fields(dosing: dict, catalog: Catalog, weight_kg: float | None) -> dict:
    """dose, unit, frequency (catalog code), rate, rate_unit ... of one dosing form."""
    form = dosing["form"]
    out = {"form": form, "dose": None, "unit": None, "frequency": None, "rate": None,
           "rate_unit": None, "as_needed": form == "as_needed"}
    if form in ("scheduled", "as_needed"):
        out.update(dose=_num(dosing["dose"]["value"]), unit=dosing["dose"]["unit"],
                   frequency=frequency_code(dosing["frequency"], catalog))
        if dosing.get("max_daily"):
            out["max_daily"] = _quantity(dosing["max_daily"])
        return out
    rate = dosing.get("rate") if form == "infusion" else dosing.get("basal_rate")
    if rate is not None:
        out.update(rate=_num(rate["value"]), rate_unit=rate["unit"])
        out["rate_mg_per_h"] = _num(rate_mg_per_h(rate, weight_kg))
        if is_weight_based(rate):
            out["weight_kg"] = _num(weight_kg)
    if form == "pca":
        out.update(dose=_num(dosing["demand_dose"]["value"]), unit=dosing["demand_dose"]["unit"])
        out["pca"] = {
            "demand_dose": _quantity(dosing["demand_dose"]),
            "lockout_minutes": _num(dosing["lockout_minutes"]),
            "basal_rate": _quantity(dosing["basal_rate"]) if dosing.get("basal_rate") else None,
            "limit": _quantity(dosing["limit"]) if dosing.get("limit") else None,
            "limit_hours": dosing.get("limit_hours"),
        }
    return out


def order_entry(order: Order, at: int, course: Course, tz: ZoneInfo, catalog: Catalog) -> dict:
    state = order.state_at(at)
    entry = {"order_id": order.order_id, "drug": order.drug, "route": state.route}
    entry.update(dosing_fields(state.dosing, catalog, course.weight_at(at)))
    entry.update(
        status="on-hold" if state.held else "active",
        started_at=iso(order.start, tz),
        last_change=_change(state.last_change, tz),
        indication=order.indication,
        prescriber=order.prescriber,
        source="order",
        event_id=order.event_id,
    )
    return entry


def listed_entry(x: Listed, tz: ZoneInfo, catalog: Catalog) -> dict:
    entry = {"order_id": x.order_id, "drug": x.drug, "route": x.route}
    entry.update(dosing_fields(x.dosing, catalog, None))
    entry.update(status="active", started_at=iso(x.start, tz), last_change=None,
                 indication=x.indication, source=x.source, event_id=x.event_id, line=x.index)
    if x.note:
        entry["note"] = x.note
    return entry


def _change(ch, tz: ZoneInfo) -> dict | None:
    if ch is None:
        return None
    what = {"changed": ", ".join(ch.fields), "rate": "rate", "held": "held", "resumed": "resumed"}[ch.kind]
    values = {k: _quantity(v) if isinstance(v, dict) else v for k, v in ch.fields.items()}
    return {"at": iso(ch.at, tz), "what": what, "values": values, "reason": ch.reason, "event_id": ch.event_id}


def _quantity(q: dict) -> dict:
    return {"value": _num(q["value"]), "unit": q["unit"]}


def frequency_code(text: str, catalog: Catalog) -> str:
    freq = catalog.frequency(text)
    return freq.code if freq is not None else text


# --- totals ---------------------------------------------------------------------------------


def totals(patient_id: str, tz: ZoneInfo, days: list[Amount], table: MmeTable,
           hours: list[Amount] | None = None, catalog: Catalog | None = None) -> dict:
    """Per local day (or clock hour) and per drug and route: amount in mg, and MME of opioids.

    `days` are always the daily rows: a dose-dependent factor (methadone in cdc-2016)
    depends on the day's total even when hours are reported.
    """
    catalog = catalog or default_catalog()
    day_mg = {(r.date, r.drug, r.route): r.amount_mg for r in days}
    rows = days if hours is None else hours
    groups: dict[tuple, list[Amount]] = defaultdict(list)
    for r in rows:
        groups[(r.start, r.date, r.hour, r.fold)].append(r)
    out = []
    for (start, day, hour, fold), items in sorted(groups.items()):
        d0, d1 = day_bounds(date.fromisoformat(day), tz)
        entry = {"date": day}
        if hours is not None:
            entry.update(hour=hour, start=iso(start, tz))
        entry.update(_mme_of(items, table, catalog, day_mg, (d1 - d0) / US_PER_HOUR))
        out.append(entry)
    return {"patient_id": patient_id, "timezone": str(tz.key), "mme_table": table.name,
            "mme_table_edition": table.edition, "by": "day" if hours is None else "hour", "days": out}


def _mme_of(items: Iterable[Amount], table: MmeTable, catalog: Catalog, day_mg: dict,
            day_hours: float) -> dict:
    drugs, mmes, missing = [], [], []
    for r in sorted(items, key=lambda r: (r.drug, r.route)):
        item = {"drug": r.drug, "route": r.route, "amount": _num(r.amount_mg), "unit": "mg", "mme": None}
        drug = catalog.drug(r.drug)
        if drug is not None and drug.is_opioid:
            mme = table.mme(r.drug, r.route, r.amount_mg, day_mg.get((r.date, r.drug, r.route), r.amount_mg),
                            day_hours)
            if mme is None:
                why = table.no_factor.get(r.drug) or f"no factor for {r.drug} {r.route} in {table.name}"
                item["mme_note"] = why
                missing.append(f"{r.drug} {r.route}")
            else:
                item["mme"] = _num(mme)
                mmes.append(mme)
        drugs.append(item)
    result = {"mme": _num(math.fsum(mmes)), "drugs": drugs}
    if missing:
        result["mme_missing"] = missing
    return result


def opioid_mme(table: MmeTable, catalog: Catalog, drug: str, route: str, amount_mg: float,
               day_hours: float) -> float | None:
    """MME of one daily row (None for non-opioids and opioids without a factor)."""
    d = catalog.drug(drug)
    if d is None or not d.is_opioid:
        return None
    return table.mme(drug, route, amount_mg, amount_mg, day_hours)
