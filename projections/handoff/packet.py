"""The handoff packet as data: what a receiving nurse needs, read from one patient's record.

At a discharge or transfer (the latest transition at or before the time asked is one), the
packet describes the list that leaves, with the reconciliation of that transition; while
the patient is in hospital, the orders active at that time (a unit or shift handoff), with
the reconciliation of the admission as context.

Sections: open alerts (those of the last 7 days or of this transition first, older ones
apart), each medication (dose, route, frequency, indication, start, last dose, why it
matters), what was stopped or left out, changes of the last 7 days, tapers in progress, and
opioid exposure: administered MME per day (what was given) and the prescribed MME of the
list (what it allows), kept apart.
"""
from __future__ import annotations

from datetime import timedelta

from mar.catalog import Catalog, default_catalog
from projections.course import Course, Order
from projections.mme import load_table
from projections.report import totals as totals_report
from projections.timeline import US_PER_HOUR, day_bounds, iso, local_day, to_datetime
from projections.totals import amounts, course_inputs

from ..prescribed_mme import from_items, prescribed_mme
from ..reconcile import NoTransition, PatientRecord, Reconciliation, reconcile
from ..reconcile.items import Item, describe, dosing_text, from_listed, from_order, mg, q, rate_key
from ..reconcile.lists import NOUN
from .history import why_it_matters

RECENT = 7 * 24 * US_PER_HOUR
LEAVING = ("discharged", "transferred")
SEVERITY_RANK = {"high": 0, "moderate": 1, "low": 2}


def packet_time(record: PatientRecord, at: int | None) -> int:
    """Without a time: the latest discharge or transfer, else now."""
    if at is not None:
        return at
    leaving = [t for t in record.course.transitions if t.kind in LEAVING]
    return leaving[-1].at if leaving else record.now()


def build_packet(record: PatientRecord, at: int | None = None, catalog: Catalog | None = None,
                 table_name: str | None = None) -> dict:
    catalog = catalog or default_catalog()
    at = packet_time(record, at)
    course, tz = record.course, record.tz
    current = _latest_transition(course, at)
    local = _local(tz)
    if _leaving_at(current, at):
        recon = reconcile(record, NOUN[current.kind], current.at, catalog=catalog)
        items = list(recon.sides.after)
        mode = "transition"
    else:
        recon = _context(record, current, catalog)
        items = [from_order(o, at) for o in sorted(course.active_orders(at), key=lambda o: (o.drug, o.start))]
        items += [from_listed(x) for x in course.active_listed(at)]
        mode = "in hospital" if course.active_orders(at) else "outside hospital"
    status = {id(x.after): x for x in recon.lines if x.after is not None} if recon else {}
    omissions = _omission_history(record, at, catalog)
    meds = [_medication(record, item, status.get(id(item)), current, at, catalog, local, omissions)
            for item in items]
    table = load_table(table_name)
    return {
        "patient_id": record.patient_id,
        "at": iso(at, tz),
        "timezone": str(tz.key),
        "mode": mode,
        "title": _title(current, mode, local),
        "transition": _transition_json(current, tz),
        "alerts": _alerts(record, at, current, recon),
        "reconciliation": recon.to_json() if recon else None,
        "medications": meds,
        "stopped": [_line_brief(x, catalog) for x in (recon.lines if recon and mode == "transition" else [])
                    if x.status == "stopped"],
        "omitted": [_line_brief(x, catalog) | {"why": why_it_matters(course, x.drug, record.by_id, local, at,
                                                                     omissions.get(x.drug, []))}
                    for x in (recon.lines if recon and mode == "transition" else []) if x.status == "omitted"],
        "changes_last_7_days": _changes(course, at, local, catalog),
        "tapers": [m["taper"] | {"drug": m["drug"]} for m in meds if m.get("taper")],
        "mme": {
            "administered": _administered(course, at, tz, table),
            "prescribed": prescribed_mme(from_items(items, catalog), table, catalog, course.weight_at(at),
                                         record.patient_id, iso(at, tz), _list_name(mode)).to_json(),
        },
    }


def _local(tz):
    def local(us: int) -> str:
        return to_datetime(us, tz).strftime("%Y-%m-%d %H:%M")
    return local


def _latest_transition(course: Course, at: int):
    found = [t for t in course.transitions if t.at <= at]
    return found[-1] if found else None


def _leaving_at(current, at: int) -> bool:
    """A discharge stays the patient's list until the next admission; after a transfer the
    orders go on changing, so its list is the packet only at the transfer itself."""
    if current is None:
        return False
    return current.kind == "discharged" or (current.kind == "transferred" and current.at == at)


def _context(record: PatientRecord, current, catalog: Catalog) -> Reconciliation | None:
    """In hospital: the reconciliation of the admission (or transfer) the stay is in."""
    if current is None or current.kind == "discharged":
        return None
    try:
        return reconcile(record, NOUN[current.kind], current.at, catalog=catalog)
    except NoTransition:
        return None


def _title(current, mode: str, local) -> str:
    if mode == "transition":
        where = current.data.get("destination") or current.data.get("to_location")
        to = f" to {where}" if where else ""
        return f"Medication handoff: {NOUN[current.kind]}{to} at {local(current.at)}"
    return f"Medication handoff ({mode})"


def _list_name(mode: str) -> str:
    return "the list that leaves" if mode == "transition" else "the active orders"


def _transition_json(t, tz) -> dict | None:
    if t is None:
        return None
    d = t.data
    return {"kind": NOUN[t.kind], "at": iso(t.at, tz), "event_id": t.event_id,
            "where": d.get("destination") or d.get("to_location") or d.get("location"),
            "from": d.get("from_location") or d.get("from_facility")}


# --- medications -------------------------------------------------------------------------------


def _medication(record: PatientRecord, item: Item, line, current, at: int, catalog: Catalog, local,
                omissions: dict[str, list[tuple[int, int | None]]]) -> dict:
    course = record.course
    order = _order_for(course, item, current, at)
    out = describe(item, catalog, course.weight_at(at))
    out["indication"] = item.indication or (order.indication if order else None)
    out["line"] = line_json(item, out["indication"])
    out["started_at"] = iso(order.start, record.tz) if order else None
    first = min((o.start for o in course.orders.values() if o.drug == item.drug and o.start <= at), default=None)
    out["first_started_at"] = iso(first, record.tz) if first is not None else None
    out["status"] = line.status if line else None
    out["reason"] = line.reason if line else None
    out["why"] = why_it_matters(course, item.drug, record.by_id, local, at, omissions.get(item.drug, []))
    out["last_dose"] = _last_dose(course, item.drug, at, record.tz)
    out["taper"] = _taper(order, at, local, catalog) if order else None
    return out


def line_json(item: Item, indication: str | None = None) -> dict:
    """The medication as a mar list line (what the FHIR packet sends and reads back)."""
    raw = {"drug": item.drug, "route": item.route, "dosing": item.dosing,
           "indication": indication or item.indication, "order_id": item.order_id, "note": item.note}
    return {k: v for k, v in raw.items() if v is not None}


def _order_for(course: Course, item: Item, current, at: int) -> Order | None:
    """The order a list line carries (named, or the latest of its drug active before)."""
    if item.order_id and item.order_id in course.orders:
        return course.orders[item.order_id]
    when = current.at - 1 if current is not None and current.kind in LEAVING else at
    found = [o for o in course.orders.values() if o.drug == item.drug and o.start <= when]
    return max(found, key=lambda o: (o.start, o.order_id)) if found else None


def _last_dose(course: Course, drug: str, at: int, tz) -> dict | None:
    given = [a for a in course.administrations if a.drug == drug and a.at <= at]
    running = [s for s in course.segments if s.drug == drug and s.start <= at]
    out = None
    if given:
        a = given[-1]
        out = {"at": iso(a.at, tz), "amount": round(a.mg, 6), "unit": "mg", "route": a.route,
               "kind": a.kind, "order_id": a.order_id}
    if running:
        s = max(running, key=lambda s: s.start)
        end = s.end if s.end is not None and s.end <= at else None
        if out is None or (end or at) >= course_time(out["at"]):
            out = {"at": iso(end, tz) if end is not None else None, "running_since": iso(s.start, tz),
                   "rate": s.rate, "rate_unit": s.rate_unit, "route": s.route, "kind": s.source,
                   "order_id": s.order_id, "stopped": end is not None}
    return out


def course_time(text: str) -> int:
    from projections.timeline import instant

    return instant(text)


def _level(order: Order, at: int, catalog: Catalog) -> tuple[float, str] | None:
    """What a taper reduces: the daily amount of a scheduled order, or the rate of an
    infusion or PCA basal (as ordered, in its unit)."""
    d = order.state_at(at).dosing
    if d["form"] == "scheduled":
        freq = catalog.frequency(d["frequency"])
        if freq is None or freq.per_day is None:
            return None
        return mg(d["dose"]) * freq.per_day, "mg/day"
    rate = d.get("rate") if d["form"] == "infusion" else d.get("basal_rate")
    if rate is None:
        return None
    value, _ = rate_key(rate)
    return value, rate["unit"]


def _taper(order: Order, at: int, local, catalog: Catalog) -> dict | None:
    """A taper in progress: the dose or rate changes of the last 7 days end with a run of
    reductions. The run (since the last increase) is reported step by step."""
    run = []
    for ch in order.changes:
        if not (at - RECENT < ch.at <= at) or ch.kind not in ("changed", "rate"):
            continue
        if order.end is not None and ch.at >= order.end:
            continue
        before, after = _level(order, ch.at - 1, catalog), _level(order, ch.at, catalog)
        if before is None or after is None or before[0] == after[0]:
            continue
        run = run + [ch] if after[0] < before[0] else []
    if not run:
        return None
    path = [order.state_at(run[0].at - 1)] + [order.state_at(ch.at) for ch in run]
    return {"order_id": order.order_id,
            "steps": [{"at": local(ch.at), "to": dosing_text(from_order(order, ch.at), catalog), "reason": ch.reason}
                      for ch in run],
            "text": " -> ".join(_amount(s.dosing, catalog) for s in path) + f" since {local(run[0].at)}"}


def _amount(d: dict, catalog: Catalog) -> str:
    if d["form"] == "scheduled":
        freq = catalog.frequency(d["frequency"])
        per_day = f" ({mg(d['dose']) * freq.per_day:g} mg/day)" if freq and freq.per_day else ""
        return f"{q(d['dose'])} {d['frequency']}{per_day}"
    rate = d.get("rate") if d["form"] == "infusion" else d.get("basal_rate")
    return q(rate) if rate else "no rate"


def _line_brief(line, catalog: Catalog) -> dict:
    return {"drug": line.drug, "status": line.status, "before": describe(line.before, catalog),
            "reason": line.reason, "documentation": line.documentation, "notes": list(line.notes),
            "line": line_json(line.before)}


def _omission_history(record: PatientRecord, at: int, catalog: Catalog) -> dict[str, list[tuple[int, int | None]]]:
    """drug -> [(discharge time it was left off at, first order of it after, or None)]."""
    course = record.course
    out: dict[str, list[tuple[int, int | None]]] = {}
    for t in course.transitions:
        if t.kind != "discharged" or t.at > at:
            continue
        for line in reconcile(record, "discharge", t.at, catalog=catalog).lines:
            if line.status != "omitted":
                continue
            back = min((o.start for o in course.orders.values() if o.drug == line.drug and t.at < o.start <= at),
                       default=None)
            out.setdefault(line.drug, []).append((t.at, back))
    return out


# --- changes of the last 7 days --------------------------------------------------------------


def _changes(course: Course, at: int, local, catalog: Catalog) -> list[dict]:
    lo = at - RECENT
    rows: list[tuple[int, dict]] = []
    for o in course.orders.values():
        if lo < o.start <= at:
            rows.append((o.start, {"at": local(o.start), "drug": o.drug, "order_id": o.order_id,
                                   "change": "started: " + dosing_text(from_order(o, o.start), catalog),
                                   "reason": o.indication}))
        for ch in o.changes:
            if lo < ch.at <= at:
                rows.append((ch.at, {"at": local(ch.at), "drug": o.drug, "order_id": o.order_id,
                                     "change": _change_text(o, ch, catalog), "reason": ch.reason}))
    for t in course.transitions:
        if lo < t.at <= at:
            where = t.data.get("destination") or t.data.get("to_location") or t.data.get("location") or ""
            to = f" to {where}" if where else ""
            rows.append((t.at, {"at": local(t.at), "drug": None, "order_id": None,
                                "change": f"{NOUN[t.kind]}{to} (orders active before it end)"
                                if t.kind != "transferred" else f"transfer{to}", "reason": t.data.get("reason")}))
    rows.sort(key=lambda r: r[0])
    return [r for _, r in rows]


def _change_text(order: Order, ch, catalog: Catalog) -> str:
    if ch.kind in ("held", "resumed", "discontinued"):
        return {"held": "held", "resumed": "resumed", "discontinued": "stopped"}[ch.kind]
    before = dosing_text(from_order(order, ch.at - 1), catalog)
    after = dosing_text(from_order(order, ch.at), catalog)
    return f"{before} -> {after}"


# --- alerts ------------------------------------------------------------------------------------


def _alerts(record: PatientRecord, at: int, current, recon: Reconciliation | None) -> dict:
    """Open alerts: those of this transition or the last 7 days first (most severe first),
    older ones apart. Reconciliation findings no alert covers are added as alerts."""
    found, problem = _engine_alerts(record, at)
    current_at = current.at if current is not None else None
    recent, older = [], []
    for a in found:
        if a["status"] != "open":
            continue
        t = course_time(a["at"])
        (recent if t > at - RECENT or t == current_at else older).append(a)
    if recon is not None:
        recent += _uncovered(recon, found, record)
    recent.sort(key=lambda a: (SEVERITY_RANK.get(a["severity"], 3), -course_time(a["at"]), a["id"]))
    out = {"current": recent, "older": older}
    if problem:
        out["problem"] = problem
    return out


def _engine_alerts(record: PatientRecord, at: int) -> tuple[list[dict], str | None]:
    try:
        from projections.alerts.engine import by_urgency, patient_alerts
    except ImportError as exc:  # the alert rules are optional for the packet, never silently absent
        return [], f"alert rules unavailable ({exc}); only reconciliation findings are shown"
    return [a.to_json(record.tz) for a in by_urgency(patient_alerts(record.events, at=at))], None


def _uncovered(recon: Reconciliation, alerts: list[dict], record: PatientRecord) -> list[dict]:
    out = []
    window = 24 * US_PER_HOUR
    for line in recon.unreconciled:
        covered = any(line.drug in [d.strip() for d in a["drug"].split(",")]
                      and abs(course_time(a["at"]) - recon.at) <= window for a in alerts)
        if covered:
            continue
        when = iso(recon.at, record.tz)
        kinds = ", ".join(line.discrepancy)
        out.append({
            "id": f"reconcile:{recon.kind}:{when[:10]}:{line.drug}",
            "patient_id": record.patient_id, "rule": "reconciliation",
            "severity": "high" if line.status == "omitted" else "moderate",
            "drug": line.drug, "at": when,
            "message": f"{line.drug}: {line.status} at the {recon.kind} ({kinds}) without a documented reason.",
            "evidence": [e for e in (recon.sides.transition.event_id if recon.sides.transition else None,
                                     line.before.event_id if line.before else None) if e],
            "status": "open", "acknowledged": None, "resolved": None})
    return out


# --- opioid exposure --------------------------------------------------------------------------


def _administered(course: Course, at: int, tz, table) -> dict:
    """Administered MME per local day over the 7 days ending with the day of `at`."""
    last = local_day(at, tz)
    first = last - timedelta(days=6)
    doses, pieces = course_inputs(course)
    rows = amounts(doses, pieces, tz, at, "day", first, last)
    report = totals_report(course.patient_id, tz, rows, table)
    by_date = {d["date"]: d for d in report["days"]}
    days = []
    for i in range(7):
        day = (first + timedelta(days=i)).isoformat()
        entry = by_date.get(day, {"date": day, "mme": 0, "drugs": []})
        opioids = [x for x in entry["drugs"] if x.get("mme") is not None or x.get("mme_note")]
        days.append({"date": day, "mme": entry["mme"], "opioids": opioids,
                     "partial": day == last.isoformat() and day_bounds(last, tz)[1] > at})
    return {"kind": "administered", "what": "MME actually given per local day (mar totals), not prescribed",
            "mme_table": table.name, "mme_table_edition": table.edition, "days": days}
