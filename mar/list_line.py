"""One line of a medication list (the JSON of `mar.events.ListedMedication`), checked
without pydantic.

Writers that take plain data, such as the handoff Bundle (`mar.fhir_out`), need the model's
guarantee without its start-up cost: importing `mar.events` builds every pydantic event
model, about 0.1 s of each process. `listed_medication(data)` returns what
`ListedMedication.model_validate(data).model_dump(mode="json", exclude_none=True)` returns,
and refuses everything the model refuses. It is stricter in one way only: the model coerces
lax spellings (a number as text, `true` for 1, 4.0 for 4), which are refused here; the JSON
that mar stores and dumps never uses them. tests/unit/test_list_line.py holds it to the model,
field by field and on generated lines.
"""
from __future__ import annotations

import math

from .errors import MarError
from .units import MASS_TO_MG, RATE_TO_MG_PER_H

TEXT_MAX = 500  # characters of a required name (drug, route, frequency), as in the model
FORMS = ("scheduled", "as_needed", "infusion", "pca")
PCA_LIMIT_HOURS = (1, 4)
LOCKOUT_MAX_MINUTES = 240


class NotAListLine(MarError):
    """The value at `field` does not fit a medication-list line."""

    def __init__(self, field: str, value: object, message: str):
        self.field, self.value = field, value
        super().__init__(f"{field}={value!r}: {message}")


def listed_medication(data: object) -> dict:
    """The canonical JSON of one list line (None values dropped); NotAListLine if it is not one."""
    line = _fields(data, "", ("drug", "route", "dosing"), ("indication", "order_id", "note"))
    out = {"drug": _name(line, "drug", ""), "route": _name(line, "route", ""),
           "dosing": _dosing(line["dosing"], "dosing")}
    for key in ("indication", "order_id", "note"):
        if line.get(key) is not None:
            out[key] = _text(line[key], key)
    return out


def _dosing(data: object, where: str) -> dict:
    if not isinstance(data, dict):
        raise NotAListLine(where, data, "must be an object")
    form = data.get("form")
    if type(form) is not str or form not in FORMS:
        raise NotAListLine(f"{where}.form", form, f"use one of {', '.join(FORMS)}")
    if form == "infusion":
        d = _fields(data, where, ("form", "rate"), ())
        return {"form": form, "rate": _amount(d["rate"], f"{where}.rate", RATE_TO_MG_PER_H)}
    if form == "pca":
        return _pca(data, where)
    optional = ("max_daily", "prn_reason") if form == "as_needed" else ()
    d = _fields(data, where, ("form", "dose", "frequency"), optional)
    out = {"form": form, "dose": _amount(d["dose"], f"{where}.dose", MASS_TO_MG),
           "frequency": _name(d, "frequency", where)}
    if d.get("max_daily") is not None:
        out["max_daily"] = _amount(d["max_daily"], f"{where}.max_daily", MASS_TO_MG)
    if d.get("prn_reason") is not None:
        out["prn_reason"] = _text(d["prn_reason"], f"{where}.prn_reason")
    return out


def _pca(data: dict, where: str) -> dict:
    d = _fields(data, where, ("form", "demand_dose", "lockout_minutes"), ("basal_rate", "limit", "limit_hours"))
    out = {"form": "pca", "demand_dose": _amount(d["demand_dose"], f"{where}.demand_dose", MASS_TO_MG),
           "lockout_minutes": _number(d["lockout_minutes"], f"{where}.lockout_minutes")}
    if out["lockout_minutes"] > LOCKOUT_MAX_MINUTES:
        raise NotAListLine(f"{where}.lockout_minutes", d["lockout_minutes"],
                           f"at most {LOCKOUT_MAX_MINUTES} minutes")
    if d.get("basal_rate") is not None:
        out["basal_rate"] = _amount(d["basal_rate"], f"{where}.basal_rate", RATE_TO_MG_PER_H)
    if d.get("limit") is not None:
        out["limit"] = _amount(d["limit"], f"{where}.limit", MASS_TO_MG)
    hours = d.get("limit_hours")
    if hours is not None:
        if type(hours) is not int or hours not in PCA_LIMIT_HOURS:
            raise NotAListLine(f"{where}.limit_hours", hours, "use 1 or 4")
        out["limit_hours"] = hours
    return out


def _amount(data: object, where: str, units: dict) -> dict:
    d = _fields(data, where, ("value", "unit"), ())
    if not isinstance(d["unit"], str) or d["unit"] not in units:
        raise NotAListLine(f"{where}.unit", d["unit"], f"use one of {', '.join(units)}")
    return {"value": _number(d["value"], f"{where}.value"), "unit": d["unit"]}


def _number(value: object, where: str) -> float:
    """A finite number above 0, as a float (the model's type)."""
    if type(value) not in (int, float):
        raise NotAListLine(where, value, "must be a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number <= 0:
        raise NotAListLine(where, value, "must be a finite number above 0")
    return number


def _name(data: dict, key: str, where: str) -> str:
    here = f"{where}.{key}" if where else key
    text = _text(data[key], here)
    if not 1 <= len(text) <= TEXT_MAX:
        raise NotAListLine(here, text, f"must be 1 to {TEXT_MAX} characters")
    return text


def _text(value: object, where: str) -> str:
    if type(value) is not str:
        raise NotAListLine(where, value, "must be text")
    return value


def _fields(data: object, where: str, required: tuple, optional: tuple) -> dict:
    """The object's fields: every required one present and not null, no other than listed."""
    if not isinstance(data, dict):
        raise NotAListLine(where or "line", data, "must be an object")
    for key in data:
        if key not in required and key not in optional:
            raise NotAListLine(f"{where}.{key}" if where else str(key), data[key], "not a field here")
    for key in required:
        if data.get(key) is None:
            raise NotAListLine(f"{where}.{key}" if where else key, None, "required")
    return data
