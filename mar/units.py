"""Units of measure. Every amount carries its unit; conversions are explicit and exact.

Masses are normalised to mg, rates to mg/h. A weight-based rate needs a weight in kg.
"""
from __future__ import annotations

MASS_TO_MG = {"mg": 1.0, "mcg": 0.001, "g": 1000.0}

# factor to mg/h, and whether the rate is per kg of body weight
RATE_TO_MG_PER_H = {
    "mg/h": (1.0, False),
    "mcg/h": (0.001, False),
    "mg/min": (60.0, False),
    "mcg/min": (0.06, False),
    "mg/kg/h": (1.0, True),
    "mcg/kg/h": (0.001, True),
    "mcg/kg/min": (0.06, True),
    "mg/kg/min": (60.0, True),
}

WEIGHT_TO_KG = {"kg": 1.0, "g": 0.001, "lb": 0.45359237}


def is_mass(unit: str) -> bool:
    return unit in MASS_TO_MG


def is_rate(unit: str) -> bool:
    return unit in RATE_TO_MG_PER_H


def is_weight_based(unit: str) -> bool:
    return RATE_TO_MG_PER_H.get(unit, (0, False))[1]


def to_mg(value: float, unit: str) -> float:
    return value * MASS_TO_MG[unit]


def to_kg(value: float, unit: str) -> float:
    return value * WEIGHT_TO_KG[unit]


def rate_to_mg_per_h(value: float, unit: str, weight_kg: float | None) -> float:
    """Convert a rate to mg/h. Weight-based rates need weight_kg (ValueError without it)."""
    factor, per_kg = RATE_TO_MG_PER_H[unit]
    if per_kg:
        if weight_kg is None:
            raise ValueError(f"rate in {unit} needs a recorded weight")
        return value * factor * weight_kg
    return value * factor
