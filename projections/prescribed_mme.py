"""Prescribed MME: the morphine milligram equivalents per day that a list of orders implies.

Computed as CDC's MME calculator does from prescriptions (MedicationRequests): for each
opioid, the amount per day the order prescribes times the conversion factor of its drug
and route, from a named, versioned table (`projections.mme`):

- scheduled: dose x doses per day (the catalog frequency; `once` counts one dose);
- as needed: the most the order allows per day: dose x (24 h / shortest interval), or the
  order's daily maximum when that is lower. Shown apart, never added silently;
- transdermal patch: factor per mcg/h x the patch rate (fentanyl: 2.4 x mcg/h);
- continuous infusion: rate x 24 h (a weight-based rate at the patient's latest weight);
- PCA: the basal rate x 24 h as scheduled, plus the demand doses a lockout allows, at most
  (capped by the PCA limit, which counts basal and demand together), as needed;
- a factor that depends on the day's dose (methadone in cdc-2016) is read at the drug's
  scheduled total for the scheduled part, and at scheduled + as-needed maximum for the
  as-needed part.

This is *prescribed* MME: what the orders allow. What was actually given is the
*administered* MME of `mar totals`; outputs always say which one they show.
An opioid without a factor for its route is listed as not counted, with the reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from mar.catalog import Catalog, default_catalog
from mar.errors import MarError
from mar.units import is_weight_based, rate_to_mg_per_h, to_mg

from .mme import MmeTable, load_table

KIND = "prescribed"
WHAT = ("prescribed MME: what the orders allow per day (CDC method: dose x doses per day x factor), "
        "not what was given (administered MME: mar totals)")


@dataclass
class MmeRow:
    drug: str
    route: str
    text: str
    part: str  # scheduled, as needed, patch, infusion, PCA basal, PCA demand
    as_needed: bool
    amount_per_day: float  # mg/day, or mcg/h for a patch
    amount_unit: str  # mg/day or mcg/h
    basis: str
    factor: float = 0.0
    factor_per: str = "mg"
    mme: float = 0.0
    order_id: str | None = None
    source: str = ""


@dataclass
class PrescribedMme:
    patient_id: str
    at: str | None
    source: str
    table: MmeTable
    rows: list[MmeRow] = field(default_factory=list)
    not_counted: list[dict] = field(default_factory=list)
    non_opioids: list[str] = field(default_factory=list)

    @property
    def scheduled_mme(self) -> float:
        return math.fsum(r.mme for r in self.rows if not r.as_needed)

    @property
    def as_needed_max_mme(self) -> float:
        return math.fsum(r.mme for r in self.rows if r.as_needed)

    def to_json(self) -> dict:
        t = self.table
        return {
            "patient_id": self.patient_id, "at": self.at, "kind": KIND, "what": WHAT, "source": self.source,
            "mme_table": t.name, "mme_table_edition": t.edition, "mme_table_title": t.title,
            "mme_table_source": t.source,
            "scheduled_mme": num(self.scheduled_mme), "as_needed_max_mme": num(self.as_needed_max_mme),
            "max_mme": num(self.scheduled_mme + self.as_needed_max_mme),
            "lines": [_row_json(r) for r in self.rows],
            "not_counted": self.not_counted, "non_opioids": self.non_opioids,
        }

    def to_text(self) -> str:
        t = self.table
        head = f"Prescribed MME per day, {self.patient_id}" + (f" at {self.at}" if self.at else "")
        out = [head + f": {self.source}", f"({WHAT})", f"table: {t.label}: {t.title}", ""]
        for title, rows in (("Scheduled", [r for r in self.rows if not r.as_needed]),
                            ("As needed, at the most the orders allow (shown apart)",
                             [r for r in self.rows if r.as_needed])):
            if rows:
                out.append(title)
                out += [f"  {_row_text(r)}" for r in rows]
        if not self.rows:
            out.append("No opioid with a factor on this list.")
        for x in self.not_counted:
            out.append(f"Not counted: {x['drug']} {x['route']} ({x['text']}): {x['reason']}")
        out.append("")
        out.append(f"Scheduled: {show(self.scheduled_mme)} MME/day; as needed at most: "
                   f"{show(self.as_needed_max_mme)} MME/day; together at most: "
                   f"{show(self.scheduled_mme + self.as_needed_max_mme)} MME/day")
        if self.non_opioids:
            out.append(f"Not opioids (no MME): {', '.join(self.non_opioids)}")
        return "\n".join(out)


def num(x: float) -> float | int:
    r = round(x, 6)
    return int(r) if r == int(r) else r


def show(x: float) -> str:
    return f"{num(x):g}" if not isinstance(num(x), int) else str(num(x))


def _row_json(r: MmeRow) -> dict:
    return {"drug": r.drug, "route": r.route, "text": r.text, "part": r.part, "as_needed": r.as_needed,
            "amount_per_day": num(r.amount_per_day), "amount_unit": r.amount_unit, "factor": num(r.factor),
            "factor_per": r.factor_per, "mme": num(r.mme), "basis": r.basis, "order_id": r.order_id,
            "source": r.source}


def _row_text(r: MmeRow) -> str:
    amount = f"{show(r.amount_per_day)} {r.amount_unit}"
    per = "" if r.factor_per == "mg" else f" per {r.factor_per}"
    part = "" if r.part in ("scheduled", "as needed") else f", {r.part}"
    return (f"{r.drug} {r.route} ({r.text}{part}): {r.basis} = {amount} x {show(r.factor)}{per} "
            f"= {show(r.mme)} MME/day")


# --- what an order prescribes ----------------------------------------------------------------------


@dataclass(frozen=True)
class OrderLine:
    """What one order or list line prescribes, in mg (the fields of mar.fhir_mme.PrescribedLine,
    which gives the same for FHIR MedicationRequests)."""

    drug: str
    route: str
    as_needed: bool
    source: str
    dose_mg: float | None = None  # one dose (a PCA: the demand dose)
    frequency: str | None = None
    doses_per_day: float | None = None  # as needed and PCA: the most the interval or lockout allows
    max_daily_mg: float | None = None  # as needed: the order's daily maximum; PCA: its limit per day
    rate: dict | None = None  # infusion rate or PCA basal rate, as ordered
    rate_mg_per_h: float | None = None  # None when weight-based
    order_id: str | None = None


def order_line(drug: str, route: str, d: dict, order_id: str | None, source: str, catalog: Catalog) -> OrderLine:
    if d["form"] == "infusion":
        return OrderLine(drug, route, False, source, rate=d["rate"], rate_mg_per_h=_mg_per_h(d["rate"]),
                         order_id=order_id)
    if d["form"] == "pca":
        cap = to_mg(d["limit"]["value"], d["limit"]["unit"]) * 24 / d["limit_hours"] if d.get("limit") else None
        return OrderLine(drug, route, True, source, to_mg(d["demand_dose"]["value"], d["demand_dose"]["unit"]),
                         None, 24 * 60 / d["lockout_minutes"], cap, d.get("basal_rate"),
                         _mg_per_h(d.get("basal_rate")), order_id)
    as_needed = d["form"] == "as_needed"
    freq = catalog.frequency(d["frequency"])
    if freq is None:
        per_day = None
    elif as_needed and freq.min_interval_hours:
        per_day = 24 / freq.min_interval_hours
    else:
        per_day = freq.per_day
    cap = to_mg(d["max_daily"]["value"], d["max_daily"]["unit"]) if d.get("max_daily") else None
    return OrderLine(drug, route, as_needed, source, to_mg(d["dose"]["value"], d["dose"]["unit"]),
                     freq.code if freq else d["frequency"], per_day, cap, order_id=order_id)


def _mg_per_h(rate: dict | None) -> float | None:
    if rate is None or is_weight_based(rate["unit"]):
        return None
    return rate_to_mg_per_h(rate["value"], rate["unit"], None)


# --- the arithmetic ----------------------------------------------------------------------------


@dataclass
class _Part:
    line: OrderLine
    text: str
    part: str
    as_needed: bool
    amount: float
    unit: str  # mg/day or mcg/h
    basis: str


def prescribed_mme(entries: list[tuple[OrderLine, str]], table: MmeTable, catalog: Catalog,
                   weight_kg: float | None, patient_id: str, at: str | None, source: str) -> PrescribedMme:
    """entries: (line, text shown for it). Opioids only get MME; the rest are named apart."""
    result = PrescribedMme(patient_id, at, source, table)
    parts: list[_Part] = []
    for line, text in entries:
        drug = catalog.drug(line.drug)
        if drug is None or not drug.is_opioid:
            if line.drug not in result.non_opioids:
                result.non_opioids.append(line.drug)
                result.non_opioids.sort()
            continue
        factor = table.factor(line.drug, line.route)
        if factor is None:
            why = table.no_factor.get(line.drug) or f"no factor for {line.drug} by route {line.route} in {table.label}"
            result.not_counted.append({"drug": line.drug, "route": line.route, "text": text, "reason": why})
            continue
        found, problem = _parts(line, text, weight_kg, factor.per)
        if problem:
            result.not_counted.append({"drug": line.drug, "route": line.route, "text": text, "reason": problem})
        parts += found
    totals: dict[tuple[str, str, bool], float] = {}
    for p in parts:
        if p.unit == "mg/day":
            key = (p.line.drug, p.line.route, p.as_needed)
            totals[key] = totals.get(key, 0.0) + p.amount
    for p in parts:
        f = table.factor(p.line.drug, p.line.route)
        scheduled = totals.get((p.line.drug, p.line.route, False), 0.0)
        day_mg = scheduled + (totals.get((p.line.drug, p.line.route, True), 0.0) if p.as_needed else 0.0)
        value = f.value(day_mg)
        result.rows.append(MmeRow(p.line.drug, p.line.route, p.text, p.part, p.as_needed, p.amount, p.unit,
                                  p.basis, value, f.per, value * p.amount, p.line.order_id, p.line.source))
    return result


def _parts(line: OrderLine, text: str, weight_kg: float | None, per: str) -> tuple[list[_Part], str | None]:
    """The per-day amounts of one order: (parts, problem)."""
    if line.rate is not None:
        mg_h = line.rate_mg_per_h
        if mg_h is None and is_weight_based(line.rate["unit"]):
            if weight_kg is None:
                return [], f"weight-based rate {line.rate['value']:g} {line.rate['unit']} and no weight recorded"
            mg_h = rate_to_mg_per_h(line.rate["value"], line.rate["unit"], weight_kg)
        rate_text = f"{line.rate['value']:g} {line.rate['unit']}"
        out = []
        if per == "mcg/h":
            out.append(_Part(line, text, "patch", False, mg_h * 1000, "mcg/h", f"patch rate {rate_text}"))
        elif mg_h is not None:
            kind = "PCA basal" if line.dose_mg is not None else "infusion"
            out.append(_Part(line, text, kind, False, mg_h * 24, "mg/day", f"{rate_text} x 24 h"))
        if line.dose_mg is not None:  # a PCA: the demand doses on top
            basal_day = mg_h * 24 if mg_h is not None else 0.0
            demand, basis = _demand(line, basal_day)
            out.append(_Part(line, text, "PCA demand", True, demand, "mg/day", basis))
        return out, None
    if per == "mcg/h":
        return [], "a patch needs its delivery rate in mcg/h, not a dose"
    if line.dose_mg is None:
        return [], "no dose"
    if line.as_needed:
        return _as_needed(line, text)
    if line.doses_per_day is None:
        if (line.frequency or "").lower() == "once":
            return [_Part(line, text, "scheduled", False, line.dose_mg, "mg/day", "one dose (once)")], None
        return [], f"frequency {line.frequency!r} has no number of doses per day"
    return [_Part(line, text, "scheduled", False, line.dose_mg * line.doses_per_day, "mg/day",
                  f"{line.dose_mg:g} mg x {line.doses_per_day:g} doses/day")], None


def _as_needed(line: OrderLine, text: str) -> tuple[list[_Part], str | None]:
    by_frequency = line.dose_mg * line.doses_per_day if line.doses_per_day is not None else None
    cap = line.max_daily_mg
    if by_frequency is None and cap is None:
        return [], f"as needed {line.frequency!r}: neither a shortest interval nor a daily maximum"
    if cap is not None and (by_frequency is None or cap <= by_frequency):
        return [_Part(line, text, "as needed", True, cap, "mg/day", f"daily maximum {cap:g} mg")], None
    return [_Part(line, text, "as needed", True, by_frequency, "mg/day",
                  f"{line.dose_mg:g} mg x {line.doses_per_day:g} doses/day at most")], None


def _demand(line: OrderLine, basal_day: float) -> tuple[float, str]:
    most = line.dose_mg * (line.doses_per_day or 0)
    basis = f"demand {line.dose_mg:g} mg x {line.doses_per_day:g} (one per lockout)"
    if line.max_daily_mg is not None and basal_day + most > line.max_daily_mg:
        return max(0.0, line.max_daily_mg - basal_day), f"PCA limit {line.max_daily_mg:g} mg/day less the basal"
    return most, basis


# --- sources ----------------------------------------------------------------------------------


def from_items(items, catalog: Catalog) -> list[tuple[OrderLine, str]]:
    """Entries from reconciliation Items (orders as they stood, list lines)."""
    from .reconcile.items import dosing_text

    return [(order_line(item.drug, item.route, item.dosing, item.order_id, item.source, catalog),
             dosing_text(item, catalog)) for item in items]


def from_bundle(path, catalog: Catalog) -> list[tuple[OrderLine, str]]:
    """Entries from a FHIR Bundle of MedicationRequests (mar.fhir_mme reads them)."""
    from mar.fhir_mme import prescribed_lines_from_bundle

    out = []
    for p in prescribed_lines_from_bundle(path, catalog=catalog):
        line = OrderLine(p.drug, p.route, p.as_needed, p.source, p.dose_mg, p.frequency, p.doses_per_day,
                         p.max_daily_mg, p.rate, p.rate_mg_per_h, p.order_id)
        out.append((line, line_text(p)))
    return out


def line_text(line) -> str:
    """A FHIR prescribed line (mar.fhir_mme.PrescribedLine) as a short text."""
    if line.as_needed and line.frequency is None and line.doses_per_day:  # a PCA: a demand dose per lockout
        text = f"{line.route} PCA demand {line.dose_mg:g} mg, lockout {24 * 60 / line.doses_per_day:g} min"
        return text + (f", basal {line.rate['value']:g} {line.rate['unit']}" if line.rate else "")
    if line.rate is not None:
        return f"{line.route} {line.rate['value']:g} {line.rate['unit']}"
    dose = f"{line.dose_mg:g} mg" if line.dose_mg is not None else "?"
    if line.dose_range_mg:
        dose = f"{line.dose_range_mg[0]:g}-{line.dose_range_mg[1]:g} mg"
    prn = " as needed" if line.as_needed else ""
    cap = f" (max {line.max_daily_mg:g} mg/day)" if line.max_daily_mg is not None else ""
    return f"{dose} {line.route} {line.frequency or ''}{prn}{cap}".replace("  ", " ")


def mme_for_patient(store, patient_id: str, at: str | None = None, list_path: str | None = None,
                    table_name: str | None = None) -> PrescribedMme:
    """What `mar mme` runs: the active orders (and listed medications) at `at` (default now),
    or a proposed list / FHIR Bundle of MedicationRequests."""
    from mar.errors import UnknownPatient

    from .reconcile import load_patient, read_list
    from .reconcile.items import from_line, from_listed, from_order
    from .timeline import iso

    catalog = default_catalog()
    table = load_table(table_name)
    try:
        record = load_patient(store, patient_id)
    except UnknownPatient:
        if list_path is None:
            raise
        record = None  # a Bundle from elsewhere: no weight, no time zone
    when = record.time(at) if record and at else (record.now() if record else None)
    weight = record.course.weight_at(when) if record else None
    shown_at = iso(when, record.tz) if record else at
    if list_path is not None:
        if _is_bundle(list_path):
            return prescribed_mme(from_bundle(list_path, catalog), table, catalog, weight, patient_id, shown_at,
                                  "FHIR Bundle " + str(list_path))
        proposed = read_list(list_path, record.chart if record else None, catalog)
        items = [from_line(x, proposed.label) for x in proposed.lines]
        return prescribed_mme(from_items(items, catalog), table, catalog, weight, patient_id, shown_at,
                              f"proposed list {list_path}")
    course = record.course
    items = [from_order(o, when) for o in sorted(course.active_orders(when), key=lambda o: (o.drug, o.start))]
    items += [from_listed(x) for x in course.active_listed(when)]
    return prescribed_mme(from_items(items, catalog), table, catalog, weight, patient_id, shown_at,
                          "active orders and listed medications")


def _is_bundle(path) -> bool:
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MarError(f"cannot read {path}: {exc}") from None
    return isinstance(data, dict) and data.get("resourceType") == "Bundle"
