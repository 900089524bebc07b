"""Reading a FHIR Bundle: load it, tell R4B from R5, validate it with fhir.resources, and
name every problem by resource and FHIR path.

The mapping modules (`fhir_in`, `fhir_lists`, `fhir_mme`) read the validated JSON (plain
dicts), so a problem can name the exact element as it was written, e.g.
`Bundle.entry[3].resource(MedicationRequest/mr-7).dosageInstruction[0].timing`.

Version: `version="R4B"` or `"R5"` forces one; otherwise a `Bundle.meta.tag` in the system
`http://hl7.org/fhir/FHIR-version` (code `4.3.0` or `5.0.0`) decides; otherwise the shape
does: the Bundle is validated as R5 and as R4B, and the version under which it is valid
wins (R5 if both, since then the elements mar reads are spelled alike). If neither
validates, the problems of the version with fewer of them are reported.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path as FilePath
from typing import Iterator

from .clinical_time import parse_instant
from .errors import InvalidEvents, MarError, Problem

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
FHIR_VERSION_SYSTEM = "http://hl7.org/fhir/FHIR-version"
# mar's own identifier systems, for values that are not valid FHIR ids (underscores, colons)
MAR_PATIENT_SYSTEM = "urn:mar:patient"
MAR_ORDER_SYSTEM = "urn:mar:order"
MAR_ALERT_SYSTEM = "urn:mar:alert"
MAR_DRUG_SYSTEM = "urn:mar:drug"  # catalog name, for site drugs without an RxNorm code
MAR_DOSING_SYSTEM = "urn:mar:dosing"  # Dosage.method of the two instructions of a PCA

VERSIONS = ("R4B", "R5")
_VERSION_CODES = {"4.3": "R4B", "5.0": "R5"}
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class FhirProblems:
    """Collects problems, each naming a FHIR path; raises them together, nothing written."""

    def __init__(self, source: str | None = None):
        self.source = source
        self.items: list[Problem] = []

    def add(self, path: "Path | str", value: object, message: str) -> None:
        self.items.append(Problem(None, str(path), value, message))

    def raise_if_any(self) -> None:
        if self.items:
            self.items.sort(key=_entry_index)  # stable: reading order within one resource
            raise InvalidEvents(self.items, self.source)

    def __bool__(self) -> bool:
        return bool(self.items)


def _entry_index(problem: Problem) -> int:
    m = re.match(r"Bundle\.entry\[(\d+)\]", problem.field)
    return int(m.group(1)) if m else -1


@dataclass(frozen=True)
class Path:
    """A FHIR path, e.g. Bundle.entry[3].resource(MedicationRequest/mr-7).dosageInstruction[0]."""

    text: str

    def __truediv__(self, name: str) -> "Path":
        return Path(f"{self.text}.{name}")

    def __getitem__(self, index: int) -> "Path":
        return Path(f"{self.text}[{index}]")

    def __str__(self) -> str:
        return self.text


@dataclass
class Entry:
    index: int
    resource: dict
    full_url: str | None
    path: Path

    @property
    def type(self) -> str:
        return self.resource.get("resourceType", "")

    @property
    def id(self) -> str | None:
        return self.resource.get("id")


@dataclass
class FhirBundle:
    version: str
    data: dict
    entries: list[Entry]
    source: str | None = None
    _by_url: dict[str, Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for e in self.entries:
            if e.full_url:
                self._by_url[e.full_url] = e
            if e.id:
                self._by_url.setdefault(f"{e.type}/{e.id}", e)

    def of_type(self, *types: str) -> Iterator[Entry]:
        return (e for e in self.entries if e.type in types)

    def resolve(self, reference: str, container: Entry) -> tuple[dict, Path] | None:
        """The resource a literal reference names: contained (#id), a Bundle entry by fullUrl
        or by Type/id (relative or absolute URL). None if it is not in the Bundle."""
        if reference.startswith("#"):
            for i, r in enumerate(container.resource.get("contained") or ()):
                if r.get("id") == reference[1:]:
                    return r, (container.path / "contained")[i]
            return None
        hit = self._by_url.get(reference)
        if hit is None:
            m = re.search(r"([A-Za-z]+/[A-Za-z0-9\-.]{1,64})(/_history/[^/]+)?$", reference)
            hit = self._by_url.get(m.group(1)) if m else None
        return (hit.resource, hit.path) if hit else None

    @property
    def timestamp(self) -> str | None:
        return self.data.get("timestamp")


def check_entries(bundle: FhirBundle, problems: FhirProblems) -> None:
    """Entries mar cannot read as facts: deletes and patches (mar corrects, never deletes)
    and entries without a resource."""
    for i, e in enumerate(bundle.data.get("entry") or ()):
        method = (e.get("request") or {}).get("method")
        if method in ("DELETE", "PATCH"):
            problems.add(f"Bundle.entry[{i}].request.method", method, "mar records facts and corrections, "
                         "never deletes or patches; send the resource with status entered-in-error")
        elif not isinstance(e.get("resource"), dict):
            problems.add(f"Bundle.entry[{i}]", e.get("fullUrl"), "an entry without a resource: nothing to read")


def model_class(version: str, resource_type: str):
    """The fhir.resources model of a resource type in a FHIR version (ValueError if none)."""
    if version == "R4B":
        from fhir.resources.R4B import get_fhir_model_class
    else:
        from fhir.resources import get_fhir_model_class
    return get_fhir_model_class(resource_type)


def load_json(source: "str | FilePath | dict", problems: FhirProblems) -> dict | None:
    if isinstance(source, dict):
        return source
    try:
        data = json.loads(FilePath(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MarError(f"cannot read {source}: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.add("Bundle", str(source), f"not valid JSON: {exc}")
        return None
    return data


def read_bundle(source: "str | FilePath | dict", version: str | None = None) -> FhirBundle:
    """Load and validate a Bundle; InvalidEvents (every problem with its path) if it is not one."""
    name = None if isinstance(source, dict) else str(source)
    problems = FhirProblems(name)
    data = load_json(source, problems)
    problems.raise_if_any()
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        got = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
        problems.add("Bundle.resourceType", got, "expected a FHIR Bundle")
        problems.raise_if_any()
    if version is not None and version not in VERSIONS:
        raise MarError(f"unsupported FHIR version {version!r}; use one of {', '.join(VERSIONS)}")
    version = version or _tagged_version(data, problems)
    problems.raise_if_any()
    if version is None:
        found = {v: _validate(data, v) for v in VERSIONS}
        ok = [v for v in ("R5", "R4B") if not found[v]]
        version = ok[0] if ok else min(("R5", "R4B"), key=lambda v: len(found[v]))
        errors = found[version]
    else:
        errors = _validate(data, version)
    for p in errors:
        problems.items.append(p)
    problems.raise_if_any()
    return FhirBundle(version, data, list(_entries(data)), name)


def _tagged_version(data: dict, problems: FhirProblems) -> str | None:
    for i, tag in enumerate((data.get("meta") or {}).get("tag") or ()):
        if isinstance(tag, dict) and tag.get("system") == FHIR_VERSION_SYSTEM:
            code = str(tag.get("code", ""))
            version = _VERSION_CODES.get(code[:3])
            if version is None:
                problems.add(f"Bundle.meta.tag[{i}].code", code,
                             "unsupported FHIR version; mar reads 4.3.x (R4B) and 5.0.x (R5)")
            return version
    return None


def _entries(data: dict) -> Iterator[Entry]:
    for i, e in enumerate(data.get("entry") or ()):
        r = e.get("resource")
        if isinstance(r, dict):
            label = f"{r.get('resourceType')}/{r['id']}" if r.get("id") else r.get("resourceType")
            yield Entry(i, r, e.get("fullUrl"), Path(f"Bundle.entry[{i}].resource({label})"))


def _validate(data: dict, version: str) -> list[Problem]:
    """Every validation problem of the Bundle under one FHIR version, with FHIR paths."""
    out: list[Problem] = []
    shell = dict(data)
    shell["entry"] = [{k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
                      for e in data.get("entry") or ()]
    if not shell["entry"]:
        shell.pop("entry")
    out += _errors(model_class(version, "Bundle"), shell, Path("Bundle"), version)
    for i, e in enumerate(data.get("entry") or ()):
        r = e.get("resource") if isinstance(e, dict) else None
        if r is None:
            continue
        here = Path(f"Bundle.entry[{i}].resource")
        kind = r.get("resourceType") if isinstance(r, dict) else None
        try:
            cls = model_class(version, kind) if isinstance(kind, str) else None
        except (ValueError, KeyError):
            cls = None
        if cls is None:
            out.append(Problem(None, f"{here}.resourceType", kind, f"not a FHIR {version} resource type"))
            continue
        label = f"{kind}/{r['id']}" if r.get("id") else kind
        out += _errors(cls, r, Path(f"Bundle.entry[{i}].resource({label})"), version)
    return out


def _errors(cls, data: dict, base: Path, version: str) -> list[Problem]:
    # imported here, not at the top: writers import this module for its constants and Path
    # and must not pay for pydantic (mar.fhir_out, docs/decisions/0004)
    from pydantic import ValidationError

    try:
        cls.model_validate(data)
    except ValidationError as exc:
        return [validation_problem(base, err, version) for err in exc.errors()]
    except (ValueError, KeyError, TypeError) as exc:  # fhir.resources raises these for odd input
        return [Problem(None, str(base), None, f"not valid FHIR {version}: {exc}")]
    return []


def validation_problem(base: Path, err: dict, version: str) -> Problem:
    """A pydantic error of fhir.resources as a Problem with its FHIR path."""
    path = base
    for part in err["loc"]:
        if isinstance(part, int):
            path = path[part]
        elif part.endswith("__ext"):
            path = path / f"_{part[:-5]}"
        elif part not in ("__root__",):
            path = path / part
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"not an element of FHIR {version} here"
    elif err["type"] == "missing":
        message = f"required in FHIR {version}"
    return Problem(None, str(path), err.get("input") if err["type"] != "missing" else None,
                   f"{message} (FHIR {version} validation)")


# --- small readers shared by the mapping modules --------------------------------------------


def instant(text: object, path: Path, problems: FhirProblems, what: str) -> str | None:
    """A FHIR dateTime/instant as ISO 8601 with its offset; a date or a time without offset is
    a problem: mar never guesses the time of day or the zone."""
    if not isinstance(text, str):
        problems.add(path, text, f"{what}: a date and time with UTC offset is required")
        return None
    try:
        return parse_instant(text).isoformat()
    except ValueError:
        problems.add(path, text, f"{what} must be a date and time with UTC offset "
                     "(for example 2007-10-15T14:00:00-07:00); a date alone or a time without "
                     "offset is refused, never guessed")
        return None


def parsed(text: str) -> datetime:
    return parse_instant(text)


def concept_text(concept: dict | None) -> str | None:
    """Readable text of a CodeableConcept: its text, else the displays of its codings."""
    if not concept:
        return None
    if concept.get("text"):
        return concept["text"]
    codings = concept.get("coding") or ()
    shown = [c.get("display") or c.get("code") for c in codings if c.get("display") or c.get("code")]
    return "; ".join(shown) or None


def reference_text(ref: dict | None) -> str | None:
    if not ref:
        return None
    ident = ref.get("identifier") or {}
    return ref.get("display") or ref.get("reference") or ident.get("value")


def modifier_extensions(node: object, path: Path, problems: FhirProblems) -> None:
    """A modifier extension changes the meaning of what holds it; mar understands none."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "modifierExtension":
                urls = [m.get("url") for m in value or () if isinstance(m, dict)]
                problems.add(path / key, ", ".join(map(str, urls)),
                             "modifier extension not understood by mar: it may change the meaning, "
                             "so the resource is refused")
            elif key == "contained":
                continue  # checked where a contained resource is used
            else:
                modifier_extensions(value, path / key, problems)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            modifier_extensions(item, path[i], problems)


# Elements every resource may carry that mar reads no meaning from. `extension` can be
# ignored by FHIR's own rule (only modifierExtension may change meaning).
BASE_IGNORED = frozenset({"resourceType", "id", "meta", "language", "text", "contained", "extension"})


def unknown_elements(node: dict, path: Path, understood: frozenset | set, problems: FhirProblems,
                     what: str) -> None:
    """Report every element that mar neither maps nor knowingly ignores."""
    for key in node:
        base = key[1:] if key.startswith("_") else key
        if base in understood or base in BASE_IGNORED or base == "modifierExtension":
            continue
        problems.add(path / key, _short(node[key]), f"{what}: element not understood by mar; "
                     "the resource is refused rather than read without it")


def _short(value: object) -> object:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, (str, int, float, bool)) else value
    if isinstance(text, str) and len(text) > 80:
        return text[:77] + "..."
    return text
