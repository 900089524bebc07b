"""FHIR medication, route, quantity and Dosage elements in mar's terms.

Shared by the import (`fhir_in`), list reading (`fhir_lists`) and MME extraction
(`fhir_mme`). Everything that does not map exactly is a problem naming its FHIR path;
nothing is approximated:

- drug: an RxNorm coding (http://www.nlm.nih.gov/research/umls/rxnorm) with a catalog
  ingredient code; an RxNorm code that is not an ingredient of the catalog is accepted only
  when its display names exactly one catalog drug (as a whole word). Other code systems are
  refused (mar's own `urn:mar:drug` catalog names, which mar writes for site drugs, excepted).
- route: SNOMED CT route codes below, or a text equal to a catalog route name or synonym.
- dose: a mass in UCUM mg, ug (mcg) or g; tablets, mL or units are refused (the strength
  would have to be guessed).
- rate: mass per time (mg/h, ug/h, mg/min, ug/min, per kg), as a Quantity or a Ratio.
- timing: exact equivalents of the catalog frequencies only (see `frequency_of`).
- PCA: the two concurrent instructions mar writes (same sequence), marked by their method in
  `urn:mar:dosing`: `pca-demand` (demand dose as needed, at most once per lockout, an
  optional 1- or 4-hour limit) and `pca-basal` (the basal rate). Unmarked instructions are
  never read as a PCA.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .catalog import Catalog, Drug
from .fhir_bundle import (
    MAR_DOSING_SYSTEM,
    MAR_DRUG_SYSTEM,
    RXNORM,
    SNOMED,
    UCUM,
    Entry,
    FhirBundle,
    FhirProblems,
    Path,
    concept_text,
    instant,
    unknown_elements,
)

# SNOMED CT route of administration (FHIR value set route-codes) -> catalog route
SNOMED_ROUTES = {
    "26643006": "po",        # oral
    "47625008": "iv",        # intravenous
    "34206005": "sc",        # subcutaneous
    "78421000": "im",        # intramuscular
    "37839007": "sl",        # sublingual
    "37161004": "pr",        # rectal
    "45890007": "td",        # transdermal
    "46713006": "nasal",     # nasal
    "404820008": "epidural",  # epidural
}
ROUTE_SNOMED = {v: k for k, v in SNOMED_ROUTES.items()}
ROUTE_DISPLAY = {"po": "Oral route", "iv": "Intravenous route", "sc": "Subcutaneous route",
                 "im": "Intramuscular route", "sl": "Sublingual route", "pr": "Rectal route",
                 "td": "Transdermal route", "nasal": "Nasal route", "epidural": "Epidural route"}

MASS_UNITS = {"mg": "mg", "ug": "mcg", "mcg": "mcg", "g": "g"}
UCUM_MASS = {"mg": "mg", "mcg": "ug", "g": "g"}
TIME_UNITS = {"h": "h", "min": "min"}
RATE_UNITS = {  # UCUM (and the common mcg spelling) -> mar rate unit
    "mg/h": "mg/h", "ug/h": "mcg/h", "mcg/h": "mcg/h", "mg/min": "mg/min", "ug/min": "mcg/min",
    "mcg/min": "mcg/min", "mg/kg/h": "mg/kg/h", "ug/kg/h": "mcg/kg/h", "mcg/kg/h": "mcg/kg/h",
    "ug/kg/min": "mcg/kg/min", "mcg/kg/min": "mcg/kg/min", "mg/kg/min": "mg/kg/min",
}
UCUM_RATE = {"mg/h": "mg/h", "mcg/h": "ug/h", "mg/min": "mg/min", "mcg/min": "ug/min",
             "mg/kg/h": "mg/kg/h", "mcg/kg/h": "ug/kg/h", "mcg/kg/min": "ug/kg/min",
             "mg/kg/min": "mg/kg/min"}

# v3 GTSAbbreviation timing codes with an exact catalog equivalent
GTS_CODES = {"QD": "daily", "BID": "bid", "TID": "tid", "QID": "qid", "Q4H": "q4h", "Q6H": "q6h",
             "Q8H": "q8h", "Q12H": "q12h"}
PER_DAY_CODES = {1: "daily", 2: "bid", 3: "tid", 4: "qid"}

# Dosage elements: read, or kept as note text, or refused
DOSAGE_READ = frozenset({"sequence", "timing", "asNeeded", "asNeededBoolean", "asNeededCodeableConcept",
                         "asNeededFor", "route", "doseAndRate", "maxDosePerPeriod"})
DOSAGE_NOTED = frozenset({"text", "additionalInstruction", "patientInstruction", "method", "site"})
PCA_READ = frozenset({"sequence", "route", "doseAndRate", "asNeeded", "asNeededBoolean", "asNeededFor",
                      "asNeededCodeableConcept", "timing", "maxDosePerPeriod"})
PCA_PARTS = ("pca-demand", "pca-basal")
PCA_LIMIT_HOURS = (1, 4)
REPEAT_READ = frozenset({"count", "frequency", "frequencyMax", "period", "periodMax", "periodUnit", "timeOfDay",
                         "when", "boundsPeriod", "duration", "durationUnit"})


@dataclass
class DosageFacts:
    """What one FHIR Dosage says, in mar units, before it is made into a mar dosing form."""

    path: Path
    route: str | None = None
    dose: dict | None = None                 # {"value", "unit"} mass
    dose_range: tuple[dict, dict] | None = None
    rate: dict | None = None                 # {"value", "unit"} mass per time
    frequency: str | None = None             # catalog frequency code
    timing_given: bool = False
    as_needed: bool = False
    prn_reason: str | None = None
    max_daily: dict | None = None
    start: str | None = None                 # timing.repeat.boundsPeriod
    end: str | None = None
    sig: str | None = None                   # Dosage.text: a rendering of the structured dosage
    pca: dict | None = None                  # a PCA's dosing fields (demand_dose, lockout_minutes, ...)
    notes: list[str] = field(default_factory=list)  # instructions beyond it (with food, ...)


class Reader:
    """Maps FHIR medication elements of one Bundle to mar terms, collecting problems."""

    def __init__(self, bundle: FhirBundle, catalog: Catalog, problems: FhirProblems):
        self.bundle = bundle
        self.catalog = catalog
        self.problems = problems
        self.r5 = bundle.version == "R5"

    # --- drug ---------------------------------------------------------------------------

    def medication(self, entry: Entry) -> Drug | None:
        """The catalog drug a MedicationRequest/Administration/Statement names."""
        r, p = entry.resource, entry.path
        if self.r5:
            med = r.get("medication") or {}
            if med.get("concept"):
                return self.drug(med["concept"], p / "medication" / "concept")
            return self._referenced(med.get("reference"), p / "medication" / "reference", entry)
        if r.get("medicationCodeableConcept"):
            return self.drug(r["medicationCodeableConcept"], p / "medicationCodeableConcept")
        return self._referenced(r.get("medicationReference"), p / "medicationReference", entry)

    def _referenced(self, ref: dict | None, path: Path, entry: Entry) -> Drug | None:
        target = self.bundle.resolve(ref.get("reference", ""), entry) if ref and ref.get("reference") else None
        if target is None or target[0].get("resourceType") != "Medication":
            self.problems.add(path, (ref or {}).get("reference"), "the Medication is neither contained "
                              "nor in the Bundle; mar needs its code")
            return None
        med, med_path = target
        if med.get("modifierExtension"):
            self.problems.add(med_path / "modifierExtension", len(med["modifierExtension"]),
                              "modifier extension not understood by mar")
        if not med.get("code"):
            self.problems.add(med_path / "code", None, "a Medication without a code cannot be "
                              "matched to the drug catalog")
            return None
        return self.drug(med["code"], med_path / "code")

    def drug(self, concept: dict, path: Path) -> Drug | None:
        found: dict[str, tuple[Drug, Path]] = {}
        others = []
        for i, coding in enumerate(concept.get("coding") or ()):
            here = path / "coding"
            here = here[i]
            system, code = coding.get("system"), coding.get("code")
            if system == RXNORM:
                drug = self._rxnorm(code, coding.get("display"), here)
            elif system == MAR_DRUG_SYSTEM:
                drug = self.catalog.drug(code or "")
                if drug is None:
                    self.problems.add(here / "code", code, "not a drug in the catalog "
                                      f"(edition {self.catalog.edition})")
            else:
                others.append(f"{system}|{code} {coding.get('display') or ''}".strip())
                continue
            if drug is not None:
                found[drug.name] = (drug, here)
        if len(found) > 1:
            self.problems.add(path, ", ".join(sorted(found)), "codings name different catalog drugs")
            return None
        if found:
            return next(iter(found.values()))[0]
        if not self.problems_at(path):
            seen = "; ".join(others) or concept.get("text") or "nothing coded"
            self.problems.add(path, seen, f"no RxNorm coding ({RXNORM}) that names a catalog drug; "
                              "other code systems and free text are not matched, never guessed")
        return None

    def problems_at(self, path: Path) -> bool:
        prefix = str(path)
        return any(p.field.startswith(prefix) for p in self.problems.items)

    def _rxnorm(self, code: str | None, display: str | None, path: Path) -> Drug | None:
        drug = self.catalog.drug_for_rxnorm(code or "")
        if drug is not None:
            return drug
        named = self.named_drugs(display or "")
        if len(named) == 1:
            return named[0]
        why = ("its display names no catalog drug" if not named else
               f"its display names {len(named)} catalog drugs ({', '.join(d.name for d in named)}); "
               "mar records one drug per line")
        self.problems.add(path / "code", f"{code} {display or ''}".strip(),
                          f"RxNorm code not an ingredient code in the drug catalog (edition "
                          f"{self.catalog.edition}) and {why}")
        return None

    def named_drugs(self, text: str) -> list[Drug]:
        words = set(re.findall(r"[a-z]+", text.lower()))
        return [d for name, d in sorted(self.catalog.drugs.items()) if set(name.split()) <= words]

    # --- route and amounts --------------------------------------------------------------

    def route(self, concept: dict | None, path: Path) -> str | None:
        if not concept:
            return None
        for coding in concept.get("coding") or ():
            if coding.get("system") == SNOMED and coding.get("code") in SNOMED_ROUTES:
                return SNOMED_ROUTES[coding["code"]]
        if concept.get("text") and self.catalog.route(concept["text"]):
            return self.catalog.route(concept["text"])
        self.problems.add(path, concept_text(concept), "route not understood: mar reads the SNOMED CT "
                          f"route codes {', '.join(f'{c} ({r})' for c, r in SNOMED_ROUTES.items())}, "
                          "or a text equal to a catalog route")
        return None

    def mass(self, q: dict | None, path: Path, what: str = "dose") -> dict | None:
        if not q:
            return None
        unit = _unit(q)
        if q.get("value") is None:
            self.problems.add(path / "value", None, f"{what} without a value")
            return None
        if unit not in MASS_UNITS:
            self.problems.add(path, f"{q.get('value')} {q.get('unit') or q.get('code') or ''}".strip(),
                              f"{what} is not a mass in mg, ug (mcg) or g; counts of tablets, "
                              "volumes or units need a strength mar does not guess")
            return None
        if q.get("comparator"):
            self.problems.add(path / "comparator", q["comparator"], f"a {what} with a comparator is not a dose")
            return None
        return {"value": q["value"], "unit": MASS_UNITS[unit]}

    def rate(self, holder: dict, path: Path, allow_zero: bool = False) -> dict | None:
        """A rate from rateQuantity or rateRatio (rateRange is refused)."""
        if holder.get("rateRange"):
            self.problems.add(path / "rateRange", None, "a rate range is not one rate; mar needs the rate")
            return None
        if holder.get("rateQuantity"):
            q = holder["rateQuantity"]
            unit = _unit(q)
            if unit not in RATE_UNITS or q.get("value") is None:
                self.problems.add(path / "rateQuantity", f"{q.get('value')} {unit}",
                                  "rate is not a mass per time (mg/h, ug/h, mg/min, ug/kg/h, ...)")
                return None
            return self._rate_value(q["value"], RATE_UNITS[unit], path / "rateQuantity", allow_zero)
        if holder.get("rateRatio"):
            ratio = holder["rateRatio"]
            num, den = ratio.get("numerator") or {}, ratio.get("denominator") or {}
            mass, time = _unit(num), _unit(den)
            if mass not in MASS_UNITS or time not in TIME_UNITS or not den.get("value") or num.get("value") is None:
                self.problems.add(path / "rateRatio", f"{num.get('value')} {mass} / {den.get('value')} {time}",
                                  "rate is not a mass per time (for example 10 mg per 1 h); volumes "
                                  "per time need a concentration mar does not guess")
                return None
            unit = MASS_UNITS[mass] if MASS_UNITS[mass] != "g" else None
            if unit is None:
                self.problems.add(path / "rateRatio", f"{num.get('value')} g", "give the rate in mg or ug")
                return None
            return self._rate_value(num["value"] / den["value"], f"{unit}/{time}", path / "rateRatio", allow_zero)
        return None

    def _rate_value(self, value: float, unit: str, path: Path, allow_zero: bool) -> dict | None:
        if value < 0 or (value == 0 and not allow_zero):
            self.problems.add(path, value, "rate must be greater than 0")
            return None
        return {"value": value, "unit": unit}

    # --- dosage -------------------------------------------------------------------------

    def dosage(self, d: dict, path: Path, infusion_allowed: bool = True) -> DosageFacts:
        """Read one Dosage (of a MedicationRequest or MedicationStatement)."""
        facts = DosageFacts(path)
        unknown_elements(d, path, DOSAGE_READ | DOSAGE_NOTED | {"maxDosePerAdministration", "maxDosePerLifetime"},
                         self.problems, "Dosage")
        for key in ("maxDosePerAdministration", "maxDosePerLifetime"):
            if d.get(key):
                self.problems.add(path / key, None, "mar records a daily maximum only (maxDosePerPeriod per 1 d)")
        facts.route = self.route(d.get("route"), path / "route")
        self._amounts(d.get("doseAndRate") or [], path / "doseAndRate", facts)
        self._as_needed(d, path, facts)
        self._max_daily(d.get("maxDosePerPeriod"), path / "maxDosePerPeriod", facts)
        if d.get("timing"):
            facts.timing_given = True
            if facts.rate is not None and facts.route == "td":
                # a patch delivers its rate continuously; its timing is when it is changed
                timing = d["timing"]
                shown = _show_repeat(timing.get("repeat") or {}) or concept_text(timing.get("code"))
                facts.notes.append(f"patch changed per timing: {shown}")
            else:
                self._timing(d["timing"], path / "timing", facts)
        facts.sig = d.get("text")
        facts.notes += _noted(d)
        return facts

    def _amounts(self, items: list, path: Path, facts: DosageFacts) -> None:
        if len(items) > 1:
            self.problems.add(path, len(items), "more than one dose and rate; mar needs exactly one")
            return
        if not items:
            return
        item, here = items[0], path[0]
        unknown_elements(item, here, {"type", "doseQuantity", "doseRange", "rateQuantity", "rateRatio",
                                      "rateRange"}, self.problems, "Dosage.doseAndRate")
        if item.get("doseQuantity"):
            facts.dose = self.mass(item["doseQuantity"], here / "doseQuantity")
        elif item.get("doseRange"):
            rng = item["doseRange"]
            low = self.mass(rng.get("low"), here / "doseRange" / "low")
            high = self.mass(rng.get("high"), here / "doseRange" / "high")
            if low and high:
                facts.dose_range = (low, high)
            elif not self.problems_at(here / "doseRange"):
                self.problems.add(here / "doseRange", None, "a dose range needs both low and high")
        facts.rate = self.rate(item, here)

    def _as_needed(self, d: dict, path: Path, facts: DosageFacts) -> None:
        if self.r5:
            reasons = [concept_text(c) for c in d.get("asNeededFor") or ()]
            facts.as_needed = bool(d.get("asNeeded")) or bool(reasons)
            facts.prn_reason = "; ".join(r for r in reasons if r) or None
        elif "asNeededCodeableConcept" in d:
            facts.as_needed = True
            facts.prn_reason = concept_text(d["asNeededCodeableConcept"])
        else:
            facts.as_needed = bool(d.get("asNeededBoolean"))

    def _max_daily(self, value, path: Path, facts: DosageFacts) -> None:
        ratios = value if isinstance(value, list) else ([value] if value else [])
        for i, ratio in enumerate(ratios):
            here = path[i] if isinstance(value, list) else path
            den = ratio.get("denominator") or {}
            per_day = (_unit(den), den.get("value")) in (("d", 1), ("h", 24))
            if not per_day:
                self.problems.add(here / "denominator", f"{den.get('value')} {_unit(den)}",
                                  "mar records a maximum per day only (denominator 1 d or 24 h)")
                continue
            mass = self.mass(ratio.get("numerator"), here / "numerator", "maximum dose")
            if mass and facts.max_daily:
                self.problems.add(here, None, "more than one daily maximum")
            facts.max_daily = facts.max_daily or mass

    def _timing(self, timing: dict, path: Path, facts: DosageFacts) -> None:
        unknown_elements(timing, path, {"repeat", "code"}, self.problems, "Timing")
        if timing.get("event"):
            self.problems.add(path / "event", timing["event"][:3], "specific administration times are "
                              "not a frequency; mar orders need a frequency")
        code = self._timing_code(timing.get("code"), path / "code")
        repeat = timing.get("repeat") or {}
        by_repeat = self._repeat(repeat, path / "repeat", facts) if repeat else None
        if code and by_repeat and code != by_repeat:
            self.problems.add(path, f"{code} / {by_repeat}", "timing code and repeat disagree")
        facts.frequency = code or by_repeat

    def _timing_code(self, concept: dict | None, path: Path) -> str | None:
        if not concept:
            return None
        for coding in concept.get("coding") or ():
            if coding.get("code") in GTS_CODES:
                return GTS_CODES[coding["code"]]
        if concept.get("text") and self.catalog.frequency(concept["text"]):
            return self.catalog.frequency(concept["text"]).code
        self.problems.add(path, concept_text(concept), "timing code not understood: mar reads "
                          f"{', '.join(GTS_CODES)} or a catalog frequency name")
        return None

    def _repeat(self, rep: dict, path: Path, facts: DosageFacts) -> str | None:
        for key in rep:
            base = key.lstrip("_")
            if base not in REPEAT_READ and base not in ("id", "extension", "modifierExtension"):
                self.problems.add(path / key, rep[key], "timing element not understood by mar "
                                  "(no exact catalog frequency for it)")
        if rep.get("boundsPeriod"):
            bp = rep["boundsPeriod"]
            if bp.get("start"):
                facts.start = instant(bp["start"], path / "boundsPeriod" / "start", self.problems, "start")
            if bp.get("end"):
                facts.end = instant(bp["end"], path / "boundsPeriod" / "end", self.problems, "end")
        if rep.get("duration") is not None:
            facts.notes.append(f"each administration over {rep['duration']} {rep.get('durationUnit', '')}".strip())
        if not {"count", "frequency", "frequencyMax", "period", "periodMax", "timeOfDay", "when"} & set(rep):
            return None  # bounds only: no frequency given
        return self._frequency(rep, path, facts)

    def _frequency(self, rep: dict, path: Path, facts: DosageFacts) -> str | None:
        """Exact catalog equivalents only: n per 1 d (n = 1..4, or n times of day), 1 per N h,
        and for as-needed doses the shortest interval of a range (every 4-6 h -> q4h)."""
        if "count" in rep:
            if rep["count"] == 1 and not {"frequency", "period", "timeOfDay", "when"} & set(rep):
                return "once"
            self.problems.add(path / "count", rep["count"], "a number of doses is not a mar frequency "
                              "(only a single dose, count 1, is: once)")
            return None
        freq, period, unit = rep.get("frequency", 1), rep.get("period"), rep.get("periodUnit")
        when = rep.get("when") or []
        times = rep.get("timeOfDay") or []
        ranged = rep.get("periodMax") is not None or rep.get("frequencyMax") is not None
        if ranged and not facts.as_needed:
            self.problems.add(path, _show_repeat(rep), "a frequency range is not a schedule; mar "
                              "needs one frequency for a scheduled dose")
            return None
        if ranged:
            freq = rep.get("frequencyMax", freq)
        if times and period is None:
            freq, period, unit = len(times), 1, "d"
        code = None
        if unit == "d" and period == 1 and freq in PER_DAY_CODES:
            code = PER_DAY_CODES[freq]
        elif unit == "h" and freq == 1 and period is not None and float(period).is_integer():
            code = f"q{int(period)}h"
        if when:
            code = "qhs" if when == ["HS"] and code == "daily" else None
        if code is None or self.catalog.frequency(code) is None:
            self.problems.add(path, _show_repeat(rep), "no exact catalog frequency for this timing; mar "
                              f"knows {', '.join(sorted(self.catalog.frequencies))}")
            return None
        return code

    # --- dosing -------------------------------------------------------------------------

    def dosing(self, facts: DosageFacts) -> dict | None:
        """The mar dosing form (scheduled, as_needed, infusion) of one Dosage, or None with problems."""
        p = facts.path
        if facts.pca is not None:
            return {"form": "pca", **facts.pca}
        if facts.dose_range:
            lo, hi = facts.dose_range
            self.problems.add(p / "doseAndRate", f"{lo['value']}-{hi['value']} {hi['unit']}",
                              "a dose range is not one dose; mar orders need the dose")
            return None
        if facts.dose and facts.rate:
            self.problems.add(p / "doseAndRate", None, "both a dose and a rate: mar cannot tell a loading "
                              "or PCA dose from an infusion; record it as mar JSON")
            return None
        if facts.rate:
            if facts.as_needed or facts.max_daily:
                self.problems.add(p, None, "an as-needed or capped infusion is not a mar dosing form")
                return None
            if facts.frequency and facts.route != "td":
                self.problems.add(p / "timing", facts.frequency, "an infusion runs continuously; "
                                  "a frequency does not fit it")
                return None
            return {"form": "infusion", "rate": facts.rate}
        if facts.dose is None:
            if not self.problems_at(p):
                self.problems.add(p / "doseAndRate", None, "no dose or rate; mar needs the amount")
            return None
        if facts.frequency is None:
            if not self.problems_at(p / "timing"):
                self.problems.add(p / "timing", None, "no frequency; mar needs one for a dose")
            return None
        if facts.as_needed:
            out = {"form": "as_needed", "dose": facts.dose, "frequency": facts.frequency}
            if facts.max_daily:
                out["max_daily"] = facts.max_daily
            if facts.prn_reason:
                out["prn_reason"] = facts.prn_reason
            return out
        if facts.max_daily:
            self.problems.add(p / "maxDosePerPeriod", None, "a daily maximum fits as-needed doses only")
            return None
        return {"form": "scheduled", "dose": facts.dose, "frequency": facts.frequency}

    def single_dosage(self, dosages: list, path: Path) -> DosageFacts | None:
        if any(_pca_part(d) for d in dosages):
            return self.pca(dosages, path)
        if len(dosages) != 1:
            self.problems.add(path, len(dosages), "mar needs exactly one dosage instruction "
                              "(several, as in a taper, are separate orders)")
            return None
        return self.dosage(dosages[0], path[0])

    # --- PCA ---------------------------------------------------------------------------

    def pca(self, dosages: list, path: Path) -> DosageFacts | None:
        """A PCA from its two marked instructions (the basal one optional); None with problems."""
        parts: dict[str, tuple[dict, Path]] = {}
        for i, d in enumerate(dosages):
            code = _pca_part(d)
            if code not in PCA_PARTS or code in parts:
                self.problems.add(path[i] / "method", code, "a PCA is one instruction with method pca-demand "
                                  f"and at most one with pca-basal ({MAR_DOSING_SYSTEM}), nothing else")
                return None
            parts[code] = (d, path[i])
        if "pca-demand" not in parts:
            self.problems.add(path, len(dosages), "a PCA basal rate without its pca-demand instruction")
            return None
        if len({d.get("sequence") for d, _ in parts.values()}) > 1:
            self.problems.add(path, ", ".join(str(d.get("sequence")) for d, _ in parts.values()),
                              "the instructions of a PCA run together: give them the same sequence")
            return None
        before = len(self.problems.items)
        d, p = parts["pca-demand"]
        facts = self._pca_instruction(d, p, "demand dose")
        pca = {"demand_dose": facts.dose, "lockout_minutes": self._lockout(d.get("timing"), p / "timing")}
        if not facts.as_needed:
            self.problems.add(p / ("asNeeded" if self.r5 else "asNeededBoolean"), None,
                              "a PCA demand dose is given as needed")
        self._pca_limit(d.get("maxDosePerPeriod"), p / "maxDosePerPeriod", pca)
        if "pca-basal" in parts:
            b, bp = parts["pca-basal"]
            basal = self._pca_instruction(b, bp, "basal rate")
            if basal.route != facts.route and basal.route and facts.route:
                self.problems.add(bp / "route", basal.route, f"the basal rate runs by the PCA's route ({facts.route})")
            if basal.as_needed or b.get("timing") or b.get("maxDosePerPeriod"):
                self.problems.add(bp, None, "a PCA basal rate runs continuously: no as needed, timing or limit")
            pca["basal_rate"] = basal.rate
            facts.notes += basal.notes
        if len(self.problems.items) > before or facts.route is None:
            if facts.route is None and not self.problems_at(p / "route"):
                self.problems.add(p / "route", None, "no route; mar needs the PCA's route")
            return None
        facts.pca = {k: v for k, v in pca.items() if v is not None}
        return facts

    def _pca_instruction(self, d: dict, path: Path, amount: str) -> DosageFacts:
        """Route, the one amount (a dose for the demand, a rate for the basal), as needed, notes."""
        facts = DosageFacts(path)
        unknown_elements(d, path, PCA_READ | DOSAGE_NOTED, self.problems, "Dosage")
        facts.route = self.route(d.get("route"), path / "route")
        self._amounts(d.get("doseAndRate") or [], path / "doseAndRate", facts)
        wanted = facts.dose if amount == "demand dose" else facts.rate
        if wanted is None or (facts.dose and facts.rate) or facts.dose_range:
            if not self.problems_at(path / "doseAndRate"):
                self.problems.add(path / "doseAndRate", None, f"the PCA {amount} and only that is needed here "
                                  f"({'doseQuantity' if amount == 'demand dose' else 'rateQuantity'})")
        self._as_needed(d, path, facts)
        facts.sig = d.get("text")
        facts.notes += _noted({k: v for k, v in d.items() if k != "method"})
        return facts

    def _lockout(self, timing: dict | None, path: Path) -> float | None:
        """The lockout: at most one demand dose per period (Timing.repeat frequency 1, period in min or h)."""
        rep = (timing or {}).get("repeat") or {}
        unit = rep.get("periodUnit")
        exact = (set(timing or {}) <= {"repeat"} and set(rep) <= {"frequency", "period", "periodUnit"}
                 and rep.get("frequency", 1) == 1 and unit in ("min", "h")
                 and type(rep.get("period")) in (int, float) and rep["period"] > 0)
        if not exact:
            self.problems.add(path, _show_repeat(rep) or None, "a PCA's lockout is its timing: at most once "
                              "per period (repeat frequency 1, period in min or h), nothing else")
            return None
        return rep["period"] * (60 if unit == "h" else 1)

    def _pca_limit(self, value, path: Path, pca: dict) -> None:
        ratios = value if isinstance(value, list) else ([value] if value else [])
        if not ratios:
            return
        here = path[0] if isinstance(value, list) else path
        den = ratios[0].get("denominator") or {}
        if len(ratios) > 1 or _unit(den) != "h" or den.get("value") not in PCA_LIMIT_HOURS:
            self.problems.add(here, f"{len(ratios)} limit(s), per {den.get('value')} {_unit(den)}",
                              "a PCA has one limit, per 1 or 4 h")
            return
        pca["limit"] = self.mass(ratios[0].get("numerator"), here / "numerator", "limit")
        pca["limit_hours"] = int(den["value"])


def _pca_part(d: dict) -> str | None:
    """pca-demand or pca-basal if the Dosage's method says so (another code of that system as is)."""
    for coding in ((d.get("method") or {}).get("coding") or ()):
        if coding.get("system") == MAR_DOSING_SYSTEM:
            return coding.get("code") or "(no code)"
    return None


def _unit(q: dict) -> str:
    """The unit of a Quantity: its UCUM code, else its unit text."""
    if q.get("code") and q.get("system") in (UCUM, None):
        return q["code"]
    if q.get("code") and q.get("system") not in (UCUM, None):
        return f"{q.get('code')} ({q.get('system')})"
    return q.get("unit") or ""


def _show_repeat(rep: dict) -> str:
    keys = ("frequency", "frequencyMax", "period", "periodMax", "periodUnit", "timeOfDay", "when")
    return ", ".join(f"{k}={rep[k]}" for k in keys if k in rep)


def _noted(d: dict) -> list[str]:
    """Dosage instructions mar keeps as a note (beyond the dose, route and timing it reads)."""
    out = [concept_text(c) for c in d.get("additionalInstruction") or () if concept_text(c)]
    if d.get("patientInstruction"):
        out.append(f"patient instruction: {d['patientInstruction']}")
    for key in ("method", "site"):
        if concept_text(d.get(key)):
            out.append(f"{key}: {concept_text(d[key])}")
    return out
