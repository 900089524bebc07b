"""The values of a FHIR Bundle that mar wrote, checked against FHIR's types without the
fhir.resources models (docs/decisions/0004-fhir-output-validation.md).

A writer of mar (the handoff Bundle) builds its resources in code: which elements a resource
has, how they nest and how many there are is decided by a few branches of that code (as
needed or not, an order or not, an alert naming drugs or not), and the tests validate every
branch with the fhir.resources models, on generated and reference inputs. What comes from
the input are the values: names, notes, reasons, codes, times and numbers. This module checks
each of them by the element that holds it (`ELEMENTS`), at least as strictly as
fhir.resources does:

- string: text with a visible character or a space, tab or line break (never empty), at most
  1 MiB of characters;
- code: no leading, trailing or doubled whitespace; id: 1 to 64 of A-Z a-z 0-9 - .;
- uri: no whitespace;
- dateTime and instant: a date and time to the second with a UTC offset (mar never writes a
  date alone), a real calendar date, offsets from -14:00 to +14:00;
- decimal: a finite JSON number; positiveInt: a whole number from 1; boolean: true or false;
- no null anywhere; an object only at an element with parts, one value (not an array) at
  a primitive element that does not repeat; an element name mar does not write is refused.

`problems(bundle)` returns every finding as a Problem naming its FHIR path; an empty list
means every value fits its element.
"""
from __future__ import annotations

import math
import re
from datetime import datetime

from .errors import Problem

# The FHIR type of every element mar writes, by name. An element not listed is refused, so a
# writer that adds one must say its type here (the tests of the writers fail until it does).
OBJECT, STRING, CODE, ID, URI, DATE_TIME, DECIMAL, POSITIVE_INT, BOOLEAN = (
    "an object", "string", "code", "id", "uri", "dateTime", "decimal", "positiveInt", "boolean")
ELEMENTS = {
    **dict.fromkeys((
        "adherence", "asNeededCodeableConcept", "asNeededFor", "coding", "concept", "denominator",
        "derivedFrom", "dosage", "doseAndRate", "doseQuantity", "effectivePeriod", "emptyReason", "entry",
        "evidence", "flag", "identifier", "implicated", "item", "maxDosePerPeriod", "medication",
        "medicationCodeableConcept", "meta", "method", "note", "numerator", "patient", "rateQuantity", "reason",
        "reasonCode", "repeat", "resource", "route", "statusReason", "subject", "tag", "timing"), OBJECT),
    **dict.fromkeys(("text", "display", "reference", "title", "detail", "unit"), STRING),
    **dict.fromkeys(("resourceType", "code", "status", "mode", "severity", "periodUnit", "when", "type"), CODE),
    "id": ID, "system": URI, "fullUrl": URI,
    **dict.fromkeys(("timestamp", "date", "dateAsserted", "start", "end", "identifiedDateTime"), DATE_TIME),
    "period": DECIMAL, "frequency": POSITIVE_INT, "count": POSITIVE_INT, "sequence": POSITIVE_INT,
    "asNeeded": BOOLEAN, "asNeededBoolean": BOOLEAN,
    "value": STRING,  # an Identifier's; a Quantity's (an object with a unit) is a decimal
}
EITHER_CODE_OR_OBJECT = frozenset({"code"})  # Coding.code, or a CodeableConcept (DetectedIssue.code)
REPEATED_PRIMITIVES = frozenset({"when"})

STRING_MAX = 1024 * 1024
_VISIBLE = re.compile(r"[ \r\n\t\S]")
_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_URI = re.compile(r"\S+")
# FHIR's instant, which is also a dateTime to the second (hl7.org/fhir/R5/datatypes.html)
_INSTANT = re.compile(r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-"
                      r"(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
                      r"(Z|[+\-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))")


def problems(bundle: dict, where: str = "Bundle") -> list[Problem]:
    """Every value of the Bundle that does not fit the FHIR type of its element."""
    found: list[Problem] = []
    _object(bundle, where, found)
    return found


def _object(node: dict, where: str, found: list[Problem]) -> None:
    for key, value in node.items():
        here = f"{where}.{key}"
        if key not in ELEMENTS:
            found.append(Problem(None, here, _short(value), "not an element mar writes "
                                 "(its FHIR type is not in mar.fhir_values.ELEMENTS)"))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                _element(node, key, item, f"{here}[{i}]", found, repeated=True)
        else:
            _element(node, key, value, here, found, repeated=False)


def _element(parent: dict, key: str, value: object, where: str, found: list[Problem], repeated: bool) -> None:
    kind = _kind(parent, key, value)
    if isinstance(value, dict) and kind == OBJECT:
        _object(value, where, found)
        return
    message = _fault(kind, value, repeated and key not in REPEATED_PRIMITIVES)
    if message:
        found.append(Problem(None, where, _short(value), message))


def _kind(parent: dict, key: str, value: object) -> str:
    if key in EITHER_CODE_OR_OBJECT and isinstance(value, dict):
        return OBJECT
    if key == "value" and "unit" in parent:
        return DECIMAL
    return ELEMENTS[key]


def _fault(kind: str, value: object, repeated: bool) -> str | None:
    """Why the value does not fit an element of that kind; None if it does."""
    if value is None:
        return "null is not a FHIR value; leave the element out"
    if kind == OBJECT:
        return "must be an object (a FHIR element with parts)"
    if isinstance(value, (dict, list)) or repeated:
        return f"must be one FHIR {kind} value"
    if kind == BOOLEAN:
        return None if type(value) is bool else "must be true or false (FHIR boolean)"
    if kind == POSITIVE_INT:
        return None if type(value) is int and value >= 1 else "must be a whole number from 1 (FHIR positiveInt)"
    if kind == DECIMAL:
        finite = type(value) in (int, float) and math.isfinite(value)
        return None if finite else "must be a finite number (FHIR decimal)"
    if type(value) is not str:
        return f"must be text (FHIR {kind})"
    return _text_fault(kind, value)


def _text_fault(kind: str, text: str) -> str | None:
    if kind == CODE:
        return None if _CODE.fullmatch(text) else "not a FHIR code: no leading, trailing or doubled spaces"
    if kind == ID:
        return None if _ID.fullmatch(text) else "not a FHIR id: 1 to 64 of A-Z a-z 0-9 - ."
    if kind == URI:
        return None if _URI.fullmatch(text) else "not a FHIR uri: no spaces"
    if kind == DATE_TIME:
        return None if _is_instant(text) else "not a date and time to the second with a UTC offset"
    if not _VISIBLE.search(text):
        return "empty or blank text is not a FHIR string"
    if len(text) > STRING_MAX:
        return f"longer than {STRING_MAX} characters (FHIR string)"
    return None


def _is_instant(text: str) -> bool:
    if not _INSTANT.fullmatch(text):
        return False
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:  # 30 February, or a leap second
        return False


def _short(value: object) -> object:
    """The value as shown in a problem: long text cut to 80 characters."""
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return value
