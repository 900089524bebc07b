"""The drug catalog: versioned reference data (drugs, classes, RxNorm codes, routes, frequencies).

The shipped edition lives in mar/reference/drugs.json. A site adds drugs, routes or
frequencies with a JSON file of the same shape named by MAR_CATALOG; its entries are
added to (never silently replace) the shipped ones.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import MarError

OPIOID = "opioid"
BENZODIAZEPINE = "benzodiazepine"
NMDA_ANTAGONIST = "nmda_antagonist"


@dataclass(frozen=True)
class Drug:
    name: str
    classes: tuple[str, ...]
    rxnorm: str | None
    routes: tuple[str, ...]
    max_single_dose_mg: float | None
    max_rate_mg_per_h: float | None

    @property
    def is_opioid(self) -> bool:
        return OPIOID in self.classes

    def is_a(self, drug_class: str) -> bool:
        return drug_class in self.classes


@dataclass(frozen=True)
class Frequency:
    code: str
    name: str
    per_day: int | None
    min_interval_hours: float | None


@dataclass
class Catalog:
    edition: str
    drugs: dict[str, Drug] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)  # code -> display name
    route_aliases: dict[str, str] = field(default_factory=dict)
    frequencies: dict[str, Frequency] = field(default_factory=dict)
    frequency_aliases: dict[str, str] = field(default_factory=dict)
    by_rxnorm: dict[str, str] = field(default_factory=dict)

    def drug(self, name: str) -> Drug | None:
        return self.drugs.get(name.strip().lower())

    def route(self, text: str) -> str | None:
        """The route code for a code or a documented synonym, else None."""
        key = text.strip().lower()
        if key in self.routes:
            return key
        return self.route_aliases.get(key)

    def frequency(self, text: str) -> Frequency | None:
        key = text.strip().lower()
        key = self.frequency_aliases.get(key, key)
        return self.frequencies.get(key)

    def drug_for_rxnorm(self, code: str) -> Drug | None:
        name = self.by_rxnorm.get(code)
        return self.drugs[name] if name else None

    def add(self, data: dict, origin: str) -> None:
        for code, spec in data.get("routes", {}).items():
            self._add_route(code, spec, origin)
        for code, spec in data.get("frequencies", {}).items():
            self._add_frequency(code, spec, origin)
        for spec in data.get("drugs", []):
            self._add_drug(spec, origin)

    def _add_route(self, code: str, spec: dict, origin: str) -> None:
        code = code.lower()
        if code in self.routes:
            raise MarError(f"{origin}: route {code!r} is already in the catalog")
        self.routes[code] = spec.get("name", code)
        for alias in spec.get("aliases", []):
            self.route_aliases[alias.lower()] = code

    def _add_frequency(self, code: str, spec: dict, origin: str) -> None:
        code = code.lower()
        if code in self.frequencies:
            raise MarError(f"{origin}: frequency {code!r} is already in the catalog")
        self.frequencies[code] = Frequency(
            code, spec.get("name", code), spec.get("per_day"), spec.get("min_interval_hours")
        )
        for alias in spec.get("aliases", []):
            self.frequency_aliases[alias.lower()] = code

    def _add_drug(self, spec: dict, origin: str) -> None:
        name = spec["name"].strip().lower()
        if name in self.drugs:
            raise MarError(f"{origin}: drug {name!r} is already in the catalog")
        drug = Drug(
            name=name,
            classes=tuple(spec.get("classes", [])),
            rxnorm=spec.get("rxnorm"),
            routes=tuple(r.lower() for r in spec.get("routes", [])),
            max_single_dose_mg=_mg(spec.get("max_single_dose")),
            max_rate_mg_per_h=_mg_per_h(spec.get("max_rate")),
        )
        self.drugs[name] = drug
        if drug.rxnorm:
            self.by_rxnorm[drug.rxnorm] = name


def _mg(q: dict | None) -> float | None:
    if q is None:
        return None
    from .units import to_mg

    return to_mg(float(q["value"]), q["unit"])


def _mg_per_h(q: dict | None) -> float | None:
    if q is None:
        return None
    from .units import rate_to_mg_per_h

    return rate_to_mg_per_h(float(q["value"]), q["unit"], None)


def _shipped() -> dict:
    return json.loads(resources.files("mar.reference").joinpath("drugs.json").read_text())


@lru_cache(maxsize=8)
def load_catalog(site_file: str | None = None) -> Catalog:
    shipped = _shipped()
    catalog = Catalog(edition=shipped["edition"])
    catalog.add(shipped, "shipped catalog")
    if site_file:
        path = Path(site_file)
        try:
            site = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise MarError(f"cannot read site catalog {site_file}: {exc}") from exc
        catalog.add(site, str(path))
        catalog.edition += f"+site:{site.get('edition', path.name)}"
    return catalog


def default_catalog() -> Catalog:
    return load_catalog(os.environ.get("MAR_CATALOG") or None)
