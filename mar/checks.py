"""Clinical checks of one event against the drug catalog and the patient's chart.

Each check returns Problems naming the field and value; nothing here writes.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from .catalog import Catalog
from .chart import Chart, _t
from .clinical_time import zone
from .errors import Problem
from .units import is_weight_based, rate_to_mg_per_h, to_mg

# Clocks of charting devices drift; a clinical time this far ahead of ours is accepted.
CLOCK_SKEW = timedelta(minutes=2)

# Corrections and acknowledgements are record keeping, allowed after death.
AFTER_DEATH_ALLOWED = ("entered_in_error", "alert_acknowledged")

# dose kind -> dosing forms it may be given against
KIND_FITS_FORM = {
    "scheduled": ("scheduled",),
    "as_needed": ("as_needed",),
    "bolus": ("infusion", "pca", "as_needed"),
    "pca_demand": ("pca",),
}

ORDER_CHANGE_FITS_FORM = {
    "dose": ("scheduled", "as_needed"),
    "frequency": ("scheduled", "as_needed"),
    "max_daily": ("as_needed",),
    "rate": ("infusion",),
    "demand_dose": ("pca",),
    "lockout_minutes": ("pca",),
    "basal_rate": ("pca",),
    "limit": ("pca",),
    "route": ("scheduled", "as_needed", "infusion", "pca"),
}

TRANSITION_NOUN = {"discharged": "discharge", "admitted": "admission", "readmitted": "readmission"}

TargetLookup = Callable[[str], "str | None"]  # event id -> its type, or None if unknown


class Checker:
    def __init__(self, catalog: Catalog, now: datetime, line: int | None):
        self.catalog = catalog
        self.now = now
        self.line = line
        self.problems: list[Problem] = []

    def fail(self, field: str, value: object, message: str) -> None:
        self.problems.append(Problem(self.line, field, value, message))

    # --- reference data -----------------------------------------------------------

    def drug(self, field: str, name: str):
        drug = self.catalog.drug(name)
        if drug is None:
            self.fail(field, name, "unknown drug: not in the drug catalog "
                      f"(edition {self.catalog.edition}); a site adds drugs with MAR_CATALOG")
        return drug

    def route(self, field: str, text: str, drug=None) -> str | None:
        code = self.catalog.route(text)
        if code is None:
            self.fail(field, text, f"unknown route; known routes: {', '.join(sorted(self.catalog.routes))}")
            return None
        if drug is not None and code not in drug.routes:
            self.fail(field, text, f"{drug.name} is not given by this route in the catalog "
                      f"(routes: {', '.join(drug.routes)})")
        return code

    def frequency(self, field: str, text: str, as_needed: bool = False) -> None:
        freq = self.catalog.frequency(text)
        if freq is None:
            known = ", ".join(sorted(self.catalog.frequencies))
            self.fail(field, text, f"unknown frequency; known: {known}")
        elif as_needed and freq.min_interval_hours is None:
            self.fail(field, text, "an as-needed order needs a frequency with a minimum interval")

    def dose(self, field: str, dose: dict, drug) -> None:
        if drug is None or drug.max_single_dose_mg is None:
            return
        mg = to_mg(dose["value"], dose["unit"])
        if mg > drug.max_single_dose_mg:
            self.fail(field, _show(dose),
                      f"implausible: above the catalog maximum single dose of {drug.name} "
                      f"({drug.max_single_dose_mg:g} mg); check the unit (mg vs mcg)")

    def rate(self, field: str, rate: dict, drug, chart: Chart, at: datetime) -> None:
        weight = None
        if is_weight_based(rate["unit"]):
            weight = chart.weight_kg_at(at)
            if weight is None:
                self.fail(field, _show(rate),
                          "a weight-based rate needs a body weight recorded before it")
                return
        if drug is None or drug.max_rate_mg_per_h is None:
            return
        mg_h = rate_to_mg_per_h(rate["value"], rate["unit"], weight)
        if mg_h > drug.max_rate_mg_per_h:
            self.fail(field, _show(rate),
                      f"implausible: {mg_h:g} mg/h is above the catalog maximum rate of "
                      f"{drug.name} ({drug.max_rate_mg_per_h:g} mg/h); check the unit")

    def dosing(self, prefix: str, dosing: dict, drug, chart: Chart, at: datetime) -> None:
        form = dosing["form"]
        if form in ("scheduled", "as_needed"):
            self.dose(f"{prefix}.dose", dosing["dose"], drug)
            self.frequency(f"{prefix}.frequency", dosing["frequency"], form == "as_needed")
            if dosing.get("max_daily") and to_mg(**_q(dosing["max_daily"])) < to_mg(**_q(dosing["dose"])):
                self.fail(f"{prefix}.max_daily", _show(dosing["max_daily"]),
                          "the daily maximum is smaller than one dose")
        elif form == "infusion":
            self.rate(f"{prefix}.rate", dosing["rate"], drug, chart, at)
        elif form == "pca":
            self.dose(f"{prefix}.demand_dose", dosing["demand_dose"], drug)
            if dosing.get("basal_rate"):
                self.rate(f"{prefix}.basal_rate", dosing["basal_rate"], drug, chart, at)
            if (dosing.get("limit") is None) != (dosing.get("limit_hours") is None):
                self.fail(f"{prefix}.limit_hours", dosing.get("limit_hours"),
                          "a PCA limit needs both limit and limit_hours (1 or 4)")

    def medication(self, prefix: str, e: dict, chart: Chart, at: datetime) -> None:
        drug = self.drug(f"{prefix}drug", e["drug"])
        self.route(f"{prefix}route", e["route"], drug)
        if "dosing" in e:
            self.dosing(f"{prefix}dosing", e["dosing"], drug, chart, at)

    # --- chart facts --------------------------------------------------------------

    def order(self, e: dict, chart: Chart, at: datetime, *, must_be_active: bool = True):
        facts = chart.order(e["order_id"])
        if facts is None:
            self.fail("order_id", e["order_id"], f"no order with this id for patient {chart.patient_id}")
            return None
        status = facts.status_at(at, chart.voided)
        if status == "not-started":
            self.fail("effective_at", e["effective_at"],
                      f"order {facts.order_id} ({facts.drug}) had not started yet "
                      f"(starts {facts.started_at.isoformat()})")
        elif must_be_active and status == "stopped":
            self.fail("order_id", e["order_id"], f"order {facts.order_id} ({facts.drug}) was discontinued before this time")
        elif must_be_active and status == "on-hold":
            self.fail("order_id", e["order_id"], f"order {facts.order_id} ({facts.drug}) was on hold at this time")
        elif must_be_active and (ended := chart.ended_by_transition(facts, at)):
            self.fail("order_id", e["order_id"], f"order {facts.order_id} ({facts.drug}) ended with the "
                      f"{TRANSITION_NOUN[ended[1]]} at {ended[0].isoformat()}; "
                      "this stay needs an order of its own")
        return facts


def _q(q: dict) -> dict:
    return {"value": q["value"], "unit": q["unit"]}


def _show(q: dict) -> str:
    return f"{q['value']:g} {q['unit']}"  # 10 g, not 10.0 g: as a clinician writes it


def check_event(e: dict, chart: Chart, catalog: Catalog, now: datetime, line: int | None,
                target_type: TargetLookup) -> list[Problem]:
    """All problems with one event (as a JSON dict) against the chart before it."""
    c = Checker(catalog, now, line)
    at = _t(e["effective_at"])
    latest = now + CLOCK_SKEW
    if at > latest:
        c.fail("effective_at", e["effective_at"], "clinical time is in the future")
    recorded = e.get("recorded_at")
    # Charted at once, the recorded time is the same text: no second parse.
    if recorded and (at if recorded == e["effective_at"] else _t(recorded)) > latest:
        c.fail("recorded_at", recorded, "recorded time is in the future")
    kind = e["type"]
    if kind == "patient_registered":
        if chart.registered:
            c.fail("patient_id", e["patient_id"], "patient is already registered")
        try:
            zone(e["timezone"])
        except ValueError:
            c.fail("timezone", e["timezone"], "unknown IANA time zone (for example America/Los_Angeles)")
        return c.problems
    if not chart.registered:
        c.fail("patient_id", e["patient_id"], "no patient registered with this id (record patient_registered first)")
        return c.problems
    died = chart.died_at()
    if died is not None and kind not in AFTER_DEATH_ALLOWED and at >= died:
        c.fail("effective_at", e["effective_at"], f"the patient died at {died.isoformat()}")
    _CHECKS.get(kind, _nothing_more)(c, e, chart, at, target_type)
    return c.problems


def _nothing_more(*_) -> None:
    pass


def _transition_lists(c: Checker, e: dict, chart: Chart, at: datetime) -> None:
    for i, item in enumerate(e.get("medication_list") or ()):
        c.medication(f"medication_list[{i}].", item, chart, at)
        if item.get("order_id") and chart.order(item["order_id"]) is None:
            c.fail(f"medication_list[{i}].order_id", item["order_id"], "no order with this id")
    for i, d in enumerate(e.get("decisions") or ()):
        c.drug(f"decisions[{i}].drug", d["drug"])
        if d.get("order_id") and chart.order(d["order_id"]) is None:
            c.fail(f"decisions[{i}].order_id", d["order_id"], "no order with this id")


def _admitted(c: Checker, e, chart, at, _):
    if chart.inpatient_at(at):
        c.fail("type", e["type"], f"patient is already admitted at {e['effective_at']}")
    _transition_lists(c, e, chart, at)


def _readmitted(c: Checker, e, chart, at, _):
    if chart.inpatient_at(at):
        c.fail("type", e["type"], f"patient is already admitted at {e['effective_at']}")
    elif not chart.ever_discharged_before(at):
        c.fail("type", e["type"], "readmission of a patient never discharged (record admitted instead)")
    _transition_lists(c, e, chart, at)


def _needs_inpatient(c: Checker, e, chart, at, _):
    if not chart.inpatient_at(at):
        c.fail("type", e["type"], f"patient is not admitted at {e['effective_at']}")
    _transition_lists(c, e, chart, at)


def _weight(c, e, chart, at, _):
    from .units import to_kg

    kg = to_kg(e["weight"]["value"], e["weight"]["unit"])
    if not 0.3 <= kg <= 500:
        c.fail("weight", _show(e["weight"]), "implausible body weight (0.3 to 500 kg)")


def _home(c: Checker, e, chart, at, _):
    c.medication("", e, chart, at)


def _ordered(c: Checker, e, chart, at, _):
    if e["order_id"] in chart.orders and chart.order(e["order_id"]) is not None:
        c.fail("order_id", e["order_id"], "an order with this id already exists for this patient")
    c.medication("", e, chart, at)


def _changed(c: Checker, e, chart, at, _):
    facts = c.order(e, chart, at)
    if facts is None:
        return
    changes = [k for k in ORDER_CHANGE_FITS_FORM if e.get(k) is not None]
    if not changes:
        c.fail("order_id", e["order_id"], "an order change must change at least one of "
               + ", ".join(ORDER_CHANGE_FITS_FORM))
    drug = c.catalog.drug(facts.drug)
    for k in changes:
        if facts.form not in ORDER_CHANGE_FITS_FORM[k]:
            c.fail(k, e[k], f"does not fit a {facts.form} order")
        elif k in ("dose", "demand_dose", "max_daily", "limit"):
            c.dose(k, e[k], drug)
        elif k in ("rate", "basal_rate") and e[k]["value"] > 0:
            c.rate(k, e[k], drug, chart, at)
        elif k == "frequency":
            c.frequency(k, e[k], facts.form == "as_needed")
        elif k == "route":
            c.route(k, e[k], drug)


def _held(c: Checker, e, chart, at, _):
    c.order(e, chart, at)


def _resumed(c: Checker, e, chart, at, _):
    facts = c.order(e, chart, at, must_be_active=False)
    if facts is not None and facts.status_at(at, chart.voided) != "on-hold":
        c.fail("order_id", e["order_id"], f"order {facts.order_id} is not on hold at this time")


def _discontinued(c: Checker, e, chart, at, _):
    facts = c.order(e, chart, at, must_be_active=False)
    if facts is not None and facts.status_at(at, chart.voided) == "stopped":
        c.fail("order_id", e["order_id"], f"order {facts.order_id} is already discontinued")


def _dose_given(c: Checker, e, chart, at, _):
    facts = c.order(e, chart, at)
    if facts is None:
        return
    if facts.form not in KIND_FITS_FORM[e["kind"]]:
        c.fail("kind", e["kind"], f"a {e['kind']} dose does not fit a {facts.form} order")
    drug = c.catalog.drug(facts.drug)
    route = c.route("route", e["route"], drug)
    ordered = c.catalog.route(facts.route) or facts.route  # the order may use a synonym (oral)
    if route is not None and route != ordered:
        c.fail("route", e["route"], f"differs from the order's route {facts.route!r}")
    c.dose("dose", e["dose"], drug)


def _rate_changed(c: Checker, e, chart, at, _):
    facts = c.order(e, chart, at)
    if facts is None:
        return
    if facts.form not in ("infusion", "pca"):
        c.fail("order_id", e["order_id"], f"order {facts.order_id} is a {facts.form} order, not an infusion")
    elif e["rate"]["value"] > 0:
        c.rate("rate", e["rate"], c.catalog.drug(facts.drug), chart, at)


def _not_given(c: Checker, e, chart, at, _):
    c.order(e, chart, at, must_be_active=False)


def _entered_in_error(c: Checker, e, chart, at, target_type: TargetLookup):
    target = e["target_event_id"]
    kind = target_type(target)
    if kind is None:
        c.fail("target_event_id", target, f"no event with this id for patient {chart.patient_id}")
    elif kind == "entered_in_error":
        c.fail("target_event_id", target, "a correction cannot itself be entered in error; record the fact again")
    elif target in chart.voided:
        c.fail("target_event_id", target, "this event is already entered in error")


_CHECKS = {
    "admitted": _admitted,
    "readmitted": _readmitted,
    "transferred": _needs_inpatient,
    "discharged": _needs_inpatient,
    "weight_recorded": _weight,
    "home_medication_recorded": _home,
    "medication_ordered": _ordered,
    "order_changed": _changed,
    "order_held": _held,
    "order_resumed": _resumed,
    "order_discontinued": _discontinued,
    "dose_given": _dose_given,
    "infusion_rate_changed": _rate_changed,
    "dose_not_given": _not_given,
    "entered_in_error": _entered_in_error,
}
