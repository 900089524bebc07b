"""Prescribed order lines for a prescribed-MME calculation, from FHIR or from mar lists.

This module only extracts: what each current order prescribes per dose and per day, in mg
(or mcg/h for a patch). The MME arithmetic and its tables live in `projections.mme`.

    prescribed_lines_from_bundle(path_or_dict) -> [PrescribedLine, ...]
    prescribed_line_from_listed(listed_medication_json) -> PrescribedLine

From a Bundle, the current MedicationRequests and MedicationStatements are read exactly as
`mar.fhir_lists` reads a list (stopped, cancelled, completed and entered-in-error ones are
not prescribed), except that a dose range is accepted here: CDC's calculator counts the
most that may be taken, so `dose_mg` is the high end and `dose_range_mg` keeps both ends.

Per line:
- scheduled: dose_mg x doses_per_day (the catalog frequency's doses per day);
- as needed (`as_needed`): the most the order allows per day, shown apart by the caller:
  `max_daily_mg` when the order caps it, else dose_mg x doses_per_day where doses_per_day
  is 24 h / the frequency's shortest interval;
- transdermal (route td) with a rate: `patch_rate_mcg_per_h`;
- other continuous infusions: `rate_mg_per_h` (None when weight-based: it needs a weight);
- a PCA (its two marked instructions, mar.fhir_dosage): as `prescribed_line_from_listed`
  reads it (the basal rate, and demand doses as needed at most one per lockout, capped by
  its limit).
`daily_mg` applies those rules; it is None for patches and weight-based rates.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FilePath

from .catalog import Catalog, default_catalog
from .fhir_bundle import FhirProblems, read_bundle
from .fhir_dosage import DosageFacts, Reader
from .fhir_lists import list_items
from .units import is_weight_based, rate_to_mg_per_h, to_mg


@dataclass(frozen=True)
class PrescribedLine:
    drug: str
    route: str
    as_needed: bool
    source: str                                   # FHIR path, or the caller's label
    dose_mg: float | None = None                  # one dose (high end of a range)
    dose_range_mg: tuple[float, float] | None = None
    frequency: str | None = None                  # catalog code
    doses_per_day: float | None = None
    max_daily_mg: float | None = None
    patch_rate_mcg_per_h: float | None = None
    rate_mg_per_h: float | None = None
    rate: dict | None = None                      # the rate as ordered, {"value", "unit"}
    order_id: str | None = None

    @property
    def daily_mg(self) -> float | None:
        """mg per day the order prescribes (as needed: the most it allows)."""
        if self.rate is not None:
            return None if self.rate_mg_per_h is None or self.patch_rate_mcg_per_h is not None \
                else self.rate_mg_per_h * 24
        if self.as_needed and self.max_daily_mg is not None:
            return self.max_daily_mg
        if self.dose_mg is None or self.doses_per_day is None:
            return None
        return self.dose_mg * self.doses_per_day


def prescribed_lines_from_bundle(source: "str | FilePath | dict", version: str | None = None,
                                 catalog: Catalog | None = None) -> list[PrescribedLine]:
    bundle = read_bundle(source, version)
    catalog = catalog or default_catalog()
    problems = FhirProblems(bundle.source)
    read = Reader(bundle, catalog, problems)
    out = []
    for item in list_items(bundle, read, problems):
        if not item.current or item.facts is None or item.drug is None:
            continue
        line = _from_facts(item.drug, item.facts, str(item.entry.path), item.order_id, catalog, read)
        if line is not None:
            out.append(line)
    problems.raise_if_any()
    return out


def _from_facts(drug: str, f: DosageFacts, source: str, order_id: str | None, catalog: Catalog,
                read: Reader) -> PrescribedLine | None:
    problems = read.problems
    if read.problems_at(f.path):
        return None  # its problems are reported already
    if f.route is None:
        problems.add(f.path / "route", None, "no route; the MME factor depends on it")
        return None
    if f.pca is not None:
        return prescribed_line_from_listed({"drug": drug, "route": f.route, "dosing": {"form": "pca", **f.pca},
                                            "order_id": order_id}, catalog, source)
    if f.dose and f.rate:
        problems.add(f.path / "doseAndRate", None, "both a dose and a rate: not one prescribed amount")
        return None
    if f.rate:
        return _rate_line(drug, f.route, f.rate, source, order_id)
    dose = f.dose or (f.dose_range[1] if f.dose_range else None)
    if dose is None:
        problems.add(f.path / "doseAndRate", None, "no dose or rate")
        return None
    if f.frequency is None:
        problems.add(f.path / "timing", None, "no frequency: doses per day unknown")
        return None
    rng = tuple(to_mg(q["value"], q["unit"]) for q in f.dose_range) if f.dose_range else None
    return PrescribedLine(
        drug=drug, route=f.route, as_needed=f.as_needed, source=source,
        dose_mg=to_mg(dose["value"], dose["unit"]), dose_range_mg=rng, frequency=f.frequency,
        doses_per_day=_doses_per_day(f.frequency, f.as_needed, catalog),
        max_daily_mg=to_mg(f.max_daily["value"], f.max_daily["unit"]) if f.max_daily else None,
        order_id=order_id)


def prescribed_line_from_listed(listed: dict, catalog: Catalog | None = None,
                                source: str = "") -> PrescribedLine:
    """The same line from a mar list line or order (drug, route, dosing)."""
    catalog = catalog or default_catalog()
    drug, route, d = listed["drug"], listed["route"], listed["dosing"]
    order_id = listed.get("order_id")
    if d["form"] == "infusion":
        return _rate_line(drug, route, d["rate"], source, order_id)
    if d["form"] == "pca":
        # the most a PCA allows: basal all day, plus a demand dose every lockout, capped by its limit
        per_day = 24 * 60 / d["lockout_minutes"]
        cap = to_mg(d["limit"]["value"], d["limit"]["unit"]) * 24 / d["limit_hours"] if d.get("limit") else None
        basal = d.get("basal_rate")
        return PrescribedLine(drug=drug, route=route, as_needed=True, source=source,
                              dose_mg=to_mg(d["demand_dose"]["value"], d["demand_dose"]["unit"]),
                              doses_per_day=per_day, max_daily_mg=cap, rate=basal,
                              rate_mg_per_h=_mg_per_h(basal), order_id=order_id)
    as_needed = d["form"] == "as_needed"
    return PrescribedLine(
        drug=drug, route=route, as_needed=as_needed, source=source,
        dose_mg=to_mg(d["dose"]["value"], d["dose"]["unit"]), frequency=d["frequency"],
        doses_per_day=_doses_per_day(d["frequency"], as_needed, catalog),
        max_daily_mg=to_mg(d["max_daily"]["value"], d["max_daily"]["unit"]) if d.get("max_daily") else None,
        order_id=order_id)


def _rate_line(drug: str, route: str, rate: dict, source: str, order_id: str | None) -> PrescribedLine:
    mg_h = _mg_per_h(rate)
    patch = mg_h * 1000 if route == "td" and mg_h is not None else None
    return PrescribedLine(drug=drug, route=route, as_needed=False, source=source, rate=rate,
                          rate_mg_per_h=mg_h, patch_rate_mcg_per_h=patch, order_id=order_id)


def _mg_per_h(rate: dict | None) -> float | None:
    if rate is None or is_weight_based(rate["unit"]):
        return None
    return rate_to_mg_per_h(rate["value"], rate["unit"], None)


def _doses_per_day(code: str, as_needed: bool, catalog: Catalog) -> float | None:
    freq = catalog.frequency(code)
    if freq is None:
        return None
    if as_needed and freq.min_interval_hours:
        return 24 / freq.min_interval_hours
    return freq.per_day
