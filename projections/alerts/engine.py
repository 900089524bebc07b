"""Every alert of one patient, computed from their stored events alone (pure: no I/O).

`patient_alerts(events)` folds the events into a course (projections.course), runs each
enabled rule over it and marks the alerts that an `alert_acknowledged` event names as
acknowledged (by whom, when, why; the latest acknowledgement wins; one entered in error
does not count).

Two kinds of "as of", as for the other read commands:
- known_at (epoch microseconds): only events recorded by then (late charting and
  corrections recorded later are left out);
- at (epoch microseconds): the record read up to that clinical time: later events are left
  out (corrections excepted: an event entered in error never happened), running infusions
  count up to it, and only alerts raised by then are returned.
"""
from __future__ import annotations

from typing import Callable, Iterable

from mar.catalog import Catalog, default_catalog

from ..course import build_course
from ..mme import MmeTable, load_table
from ..timeline import instant, zone
from . import admission, combinations, dosing, mme, omission, taper
from .config import SEVERITY_RANK, RuleSettings, default_rules
from .model import Alert, Context

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
                   at: int | None = None) -> list[Alert]:
    """The alerts of one patient's stored events, in clinical order (then rule, then id)."""
    ctx = context(events, settings, catalog, mme_table, known_at, at)
    if ctx is None:
        return []
    found: dict[str, Alert] = {}
    for name, rule in RULES.items():
        if ctx.settings.enabled(name):
            for alert in rule(ctx):
                found.setdefault(alert.id, alert)
    alerts = [a for a in found.values() if a.at <= ctx.until]
    _acknowledge(ctx, alerts)
    return sorted(alerts, key=lambda a: (a.at, a.rule, a.id))


def context(events: Iterable[dict], settings: RuleSettings | None = None, catalog: Catalog | None = None,
            mme_table: MmeTable | None = None, known_at: int | None = None, at: int | None = None) -> Context | None:
    settings = settings or default_rules()
    timed = []
    for seq, e in enumerate(events):
        if known_at is not None and instant(e["recorded_at"]) > known_at:
            continue
        t = instant(e["effective_at"])
        # A correction says the fact was never true: it applies at any clinical time (only
        # knowledge time, known_at, brings the mistaken fact back).
        if at is not None and t > at and e["type"] != "entered_in_error":
            continue
        timed.append((t, seq, e))
    timed.sort(key=lambda x: (x[0], x[1]))
    course = build_course([e for _, _, e in timed])
    if not timed or course.timezone is None:
        return None
    until = at if at is not None else _clinical_horizon(timed)
    table = mme_table or load_table(settings.rule(mme.THRESHOLD)["mme_table"])
    return Context(course, timed, zone(course.timezone), catalog or default_catalog(), table, settings, until)


# Events about the record rather than the patient: they do not move the clinical horizon
# (an acknowledgement made today must not run a still-open infusion up to today).
NOT_CLINICAL = ("alert_acknowledged",)


def _clinical_horizon(timed: list[tuple[int, int, dict]]) -> int:
    clinical = [t for t, _, e in timed if e["type"] not in NOT_CLINICAL]
    return max(clinical) if clinical else timed[-1][0]


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
