"""Opioid conversion tables (morphine milligram equivalents) as versioned data.

Shipped tables live in mar/reference/mme/*.json (cdc-2022, the default; cdc-2016 with
dose-dependent methadone; cdc-2022-nci). A site adds its own tables: JSON files of the
same shape in the directory (or directories, separated by the OS path separator) named by
MAR_MME_TABLES. A table may `extend` another and replace some of its factors; a site
table never silently replaces a shipped one of the same name.

Factors are per (drug, route): MME per mg, or per mcg/h for transdermal patches, or
tiers on the day's total dose. An opioid without a factor for its route gets no MME and
is reported as missing; nothing is guessed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from mar.errors import MarError

DEFAULT_TABLE = "cdc-2022"


class UnknownMmeTable(MarError):
    pass


@dataclass(frozen=True)
class Factor:
    drug: str
    route: str
    factor: float | None
    per: str  # "mg" or "mcg/h"
    tiers: tuple[tuple[float | None, float], ...]  # (up to mg/day inclusive, factor); None = above
    source: str

    def value(self, day_mg: float) -> float:
        """The factor for a day on which this drug by this route totals day_mg."""
        if not self.tiers:
            return self.factor  # type: ignore[return-value]
        for up_to, factor in self.tiers:
            if up_to is None or day_mg <= up_to:
                return factor
        raise AssertionError("the last tier has no upper bound")


@dataclass
class MmeTable:
    name: str
    edition: str
    title: str
    source: str
    notes: list[str] = field(default_factory=list)
    factors: dict[tuple[str, str], Factor] = field(default_factory=dict)
    no_factor: dict[str, str] = field(default_factory=dict)
    origin: str = "shipped"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.edition})"

    def factor(self, drug: str, route: str) -> Factor | None:
        return self.factors.get((drug, route))

    def mme(self, drug: str, route: str, amount_mg: float, day_mg: float, day_hours: float) -> float | None:
        """MME of amount_mg of drug by route, on a day where that drug and route total day_mg.

        day_hours is the length of the local day (23, 24 or 25): a patch factor is per
        mean mcg/h over the day.
        """
        f = self.factor(drug, route)
        if f is None:
            return None
        factor = f.value(day_mg)
        if f.per == "mcg/h":
            return factor * amount_mg * 1000 / day_hours
        return factor * amount_mg

    def describe(self) -> dict:
        return {"name": self.name, "edition": self.edition, "title": self.title, "source": self.source,
                "origin": self.origin, "notes": self.notes,
                "factors": [{"drug": f.drug, "route": f.route, "factor": f.factor, "per": f.per,
                             "tiers": [list(t) for t in f.tiers], "source": f.source}
                            for f in self.factors.values()],
                "no_factor": self.no_factor}


def _parse(data: dict, origin: str, base: MmeTable | None) -> MmeTable:
    try:
        table = MmeTable(
            name=data["name"], edition=str(data["edition"]), title=data.get("title", data["name"]),
            source=data["source"], notes=list(data.get("notes", [])), origin=origin,
        )
    except KeyError as exc:
        raise MarError(f"{origin}: MME table needs the field {exc.args[0]!r}") from None
    if base is not None:
        table.factors.update(base.factors)
        table.no_factor.update(base.no_factor)
        table.notes = base.notes + table.notes
    for i, spec in enumerate(data.get("factors", [])):
        table.factors[(spec["drug"].lower(), spec["route"].lower())] = _factor(spec, f"{origin}: factors[{i}]")
    for spec in data.get("no_factor", []):
        table.no_factor[spec["drug"].lower()] = spec["reason"]
    return table


def _factor(spec: dict, where: str) -> Factor:
    per = spec.get("per", "mg")
    if per not in ("mg", "mcg/h"):
        raise MarError(f"{where}: per={per!r}: use 'mg' or 'mcg/h'")
    tiers = tuple((t.get("up_to_mg_per_day"), float(t["factor"])) for t in spec.get("tiers", []))
    if tiers and tiers[-1][0] is not None:
        raise MarError(f"{where}: the last tier needs no up_to_mg_per_day (it covers every higher dose)")
    factor = spec.get("factor")
    if factor is None and not tiers:
        raise MarError(f"{where}: a factor needs 'factor' or 'tiers'")
    return Factor(spec["drug"].lower(), spec["route"].lower(), None if factor is None else float(factor),
                  per, tiers, spec.get("source", ""))


def _shipped_files() -> dict[str, tuple[dict, str]]:
    folder = resources.files("mar.reference").joinpath("mme")
    out = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text())
            out[data["name"]] = (data, "shipped")
    return out


def _site_files(spec: str | None) -> dict[str, tuple[dict, str]]:
    out: dict[str, tuple[dict, str]] = {}
    for part in (spec or "").split(os.pathsep):
        if not part:
            continue
        path = Path(part)
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for f in files:
            try:
                data = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise MarError(f"cannot read MME table {f}: {exc}") from exc
            if not isinstance(data, dict) or "name" not in data:
                raise MarError(f"{f}: an MME table is a JSON object with a 'name'")
            if data["name"] in out:
                raise MarError(f"{f}: MME table {data['name']!r} is defined twice")
            out[data["name"]] = (data, str(f))
    return out


@lru_cache(maxsize=8)
def _tables(site_spec: str | None) -> dict[str, MmeTable]:
    raw = _shipped_files()
    for name, (data, origin) in _site_files(site_spec).items():
        if name in raw:
            raise MarError(f"{origin}: MME table {name!r} is a shipped table; give the site table another name")
        raw[name] = (data, origin)
    done: dict[str, MmeTable] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> MmeTable:
        if name in done:
            return done[name]
        if name in chain:
            raise MarError(f"MME tables extend each other in a circle: {' -> '.join(chain + (name,))}")
        if name not in raw:
            raise UnknownMmeTable(f"MME table {chain[-1]!r} extends unknown table {name!r}")
        data, origin = raw[name]
        base = resolve(data["extends"], chain + (name,)) if data.get("extends") else None
        done[name] = _parse(data, origin, base)
        return done[name]

    for name in raw:
        resolve(name, ())
    return done


def tables() -> dict[str, MmeTable]:
    return _tables(os.environ.get("MAR_MME_TABLES") or None)


def load_table(name: str | None = None) -> MmeTable:
    name = name or DEFAULT_TABLE
    known = tables()
    if name not in known:
        raise UnknownMmeTable(f"no MME table {name!r}; known: {', '.join(sorted(known))} "
                              "(a site adds tables with MAR_MME_TABLES)")
    return known[name]
