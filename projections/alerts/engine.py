"""Every alert of one patient, computed from their stored events alone (pure: no I/O).

`patient_alerts(events)` folds the events into a course (projections.course), runs each
enabled rule over it and marks the alerts that an `alert_acknowledged` event names as
acknowledged (by whom, when, why; the latest acknowledgement wins; one entered in error
does not count), then those the record has since put right as resolved (the rule says
when and by what: `model.Resolution`), acknowledged or not.

Two kinds of "as of", as for the other read commands:
- known_at (epoch microseconds): only events recorded by then (late charting and
  corrections recorded later are left out);
- at (epoch microseconds): the record read up to that clinical time: later events are left
  out (corrections excepted: an event entered in error never happened), running infusions
  count up to it, and only alerts raised by then are returned.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

from mar.catalog import Catalog, default_catalog

from ..course import Administration, build_course, dose_mg
from ..mme import MmeTable, load_table
from ..timeline import instant, zone
from . import admission, combinations, dosing, mme, omission, taper
from .config import SEVERITY_RANK, RuleSettings, default_rules
from .model import Alert, Context, Doses

RULES: dict[str, Callable[[Context], list[Alert]]] = {
    omission.RULE: omission.check,
    admission.RULE: admission.check,
    mme.THRESHOLD: mme.check_thresholds,
    mme.RISE: mme.check_rise,
    combinations.OPIOID_BENZO: combinations.check_opioid_benzodiazepine,
    combinations.DUPLICATE: combinations.check_duplicate_opioid,
    taper.RULE: taper.check,
    dosing.WEIGHT: dosing.check_weight,
    dosing.TOO_SOON: dosing.check_too_soon,
    dosing.DAILY_MAX: dosing.check_daily_max,
    dosing.PCA: dosing.check_pca,
}


def patient_alerts(events: Iterable[dict], settings: RuleSettings | None = None, catalog: Catalog | None = None,
                   mme_table: MmeTable | None = None, known_at: int | None = None,
                   at: int | None = None, times: Sequence[int] | None = None) -> list[Alert]:
    """The alerts of one patient's stored events, in clinical order (then rule, then id).

    times: the events' clinical times (epoch microseconds) if the caller has them already."""
    ctx = context(events, settings, catalog, mme_table, known_at, at, times)
    if ctx is None:
        return []
    found: dict[str, Alert] = {}
    for name, rule in RULES.items():
        if ctx.settings.enabled(name):
            for alert in rule(ctx):
                found.setdefault(alert.id, alert)
    alerts = [a for a in found.values() if a.at <= ctx.until]
    _acknowledge(ctx, alerts)
    for a in alerts:
        if a.resolution is not None:
            if a.resolution.at <= ctx.until:
                a.status = "resolved"  # whether or not someone acknowledged it first
            else:  # the rules read only up to `until`; this keeps a later one from ever showing
                a.resolution = None
    return sorted(alerts, key=lambda a: (a.at, a.rule, a.id))


def context(events: Iterable[dict], settings: RuleSettings | None = None, catalog: Catalog | None = None,
            mme_table: MmeTable | None = None, known_at: int | None = None, at: int | None = None,
            times: Sequence[int] | None = None) -> Context | None:
    settings = settings or default_rules()
    if not isinstance(events, (list, tuple)):
        events = list(events)
    if times is None:
        times = [instant(e["effective_at"]) for e in events]
    if known_at is None and at is None:
        timed = [(t, seq, e) for seq, (t, e) in enumerate(zip(times, events))]
    else:
        timed = []
        for seq, (t, e) in enumerate(zip(times, events)):
            if known_at is not None and instant(e["recorded_at"]) > known_at:
                continue
            # A correction says the fact was never true: it applies at any clinical time (only
            # knowledge time, known_at, brings the mistaken fact back).
            if at is not None and t > at and e["type"] != "entered_in_error":
                continue
            timed.append((t, seq, e))
    timed.sort()  # by clinical time, then store order (seq is unique: the dicts are never compared)
    if not timed:
        return None
    # Four events in five are doses: the course is folded without them (nothing in the fold
    # depends on a dose), and only the doses a rule reads are made into objects. A dose keeps
    # its place among all the events (as build_course would number it).
    structure = [x for x in timed if x[2]["type"] != "dose_given"]
    given = [(t, i, e) for i, (t, _, e) in enumerate(timed) if e["type"] == "dose_given"]
    course = build_course([e for _, _, e in structure], times=[t for t, _, _ in structure])
    if course.timezone is None:
        return None
    until = at if at is not None else _clinical_horizon(timed)
    table = mme_table or load_table(settings.rule(mme.THRESHOLD)["mme_table"])
    ctx = Context(course, timed, zone(course.timezone), catalog or default_catalog(), table, settings, until)
    ctx.doses = _doses(ctx, given)
    return ctx


def _doses(ctx: Context, given: list[tuple[int, int, dict]]) -> Doses:
    """The doses the rules read (see `Doses`), as `build_course` makes them. (None is after
    `until`: that is the latest clinical time of the events, or the `at` they were cut at.)"""
    voided = ctx.course.voided
    found = Doses()
    new = tuple.__new__
    orders: dict[str, tuple[str | None, bool, str | None]] = {}
    for t, seq, e in given:
        if e["event_id"] in voided:
            continue
        order_id = e["order_id"]
        about = orders.get(order_id)
        if about is None:
            about = orders[order_id] = _order_kind(ctx, order_id)
        drug, opioid, form = about
        as_needed = form == "as_needed" and e["kind"] in AS_NEEDED_KINDS
        pca = form == "pca" and e["kind"] in PCA_KINDS
        if not (opioid or as_needed or pca):
            continue
        # course.administration's tuple, made without its two Python calls (this runs per dose)
        dose = new(Administration, (t, seq, e["event_id"], order_id, drug or "unknown", e["route"].lower(),
                                    e["kind"], dose_mg(e["dose"]), e["effective_at"]))
        if opioid:
            found.opioid.append(dose)
        if as_needed:
            found.as_needed.setdefault(order_id, []).append(dose)
        if pca:
            found.pca.setdefault(order_id, []).append(dose)
    return found


def _order_kind(ctx: Context, order_id: str) -> tuple[str | None, bool, str | None]:
    """(drug as finally known, opioid?, form if the order stands) of the order a dose names."""
    order = ctx.course.orders.get(order_id)
    drug = order.drug if order is not None else ctx.course.drug_of(order_id)
    return drug, ctx.is_opioid(drug or "unknown"), order.form if order is not None else None


AS_NEEDED_KINDS = ("as_needed", "bolus")  # on an as-needed order: what its frequency limits
PCA_KINDS = ("pca_demand", "bolus")  # on a PCA: what its limit counts besides the basal rate

# Events about the record rather than the patient: they do not move the clinical horizon
# (an acknowledgement made today must not run a still-open infusion up to today).
NOT_CLINICAL = ("alert_acknowledged",)


def _clinical_horizon(timed: list[tuple[int, int, dict]]) -> int:
    for t, _, e in reversed(timed):  # in clinical order: the first clinical one from the end
        if e["type"] not in NOT_CLINICAL:
            return t
    return timed[-1][0]


def _acknowledge(ctx: Context, alerts: list[Alert]) -> None:
    latest: dict[str, tuple[int, dict]] = {}
    for t, e in ctx.by_type("alert_acknowledged"):
        latest[e["alert_id"]] = (t, e)
    for a in alerts:
        if a.id in latest:
            t, e = latest[a.id]
            a.status = "acknowledged"
            a.acknowledged = {"by": e["recorded_by"], "at": e["effective_at"], "reason": e["reason"],
                              "event_id": e["event_id"]}


def by_urgency(alerts: Iterable[Alert]) -> list[Alert]:
    """Open alerts first, the most severe first, then the latest first."""
    return sorted(alerts, key=lambda a: (a.status != "open", SEVERITY_RANK[a.severity], -a.at, a.id))
