"""The engine: stable ids, acknowledgement from events, and the two kinds of "as of"."""
from __future__ import annotations

import random

from projections.alerts.engine import by_urgency
from projections.alerts.engine import patient_alerts as all_alerts
from projections.alerts.model import alert_id
from projections.timeline import instant
from tests.unit.projection_events import admitted, ev, infusion, mg, order, registered, scheduled
from tests.unit.test_alert_config import only


def patient_alerts(events, **kw):
    return all_alerts(events, settings=only("unreconciled_stop", "opioid_benzodiazepine"), **kw)


def record():
    lines = [{"drug": "methadone", "route": "po", "dosing": scheduled(40, "tid")}]
    return [
        registered(), admitted("2007-10-14T09:00:00-07:00"),
        order("2007-10-14T10:00:00-07:00", "mem-1", "memantine", "po", scheduled(10, "bid"), event_id="o-mem"),
        order("2007-10-14T10:00:00-07:00", "met-1", "methadone", "po", scheduled(40, "tid"), event_id="o-met"),
        order("2007-10-15T10:30:00-07:00", "hm", "hydromorphone", "iv", infusion(2, "mg/h"), event_id="o-hm"),
        order("2007-10-15T10:40:00-07:00", "lz", "lorazepam", "iv",
              {"form": "as_needed", "dose": mg(1), "frequency": "q6h"}, event_id="o-lz"),
        ev("order_discontinued", "2007-10-17T10:00:00-07:00", order_id="lz", reason="anxiety settled", event_id="x-lz"),
        ev("order_discontinued", "2007-10-28T08:00:00-07:00", order_id="hm", reason="taper complete"),
        ev("discharged", "2007-12-03T11:00:00-08:00", recorded_at="2007-12-03T11:05:00-08:00",
           destination="nursing home", medication_list=lines, event_id="dc-1"),
    ]


def ack(alert, at, reason, event_id, recorded_at=None):
    e = ev("alert_acknowledged", at, recorded_at=recorded_at, alert_id=alert, reason=reason, event_id=event_id)
    e["recorded_by"] = "pharm.diaz"
    return e


def test_ids_are_a_digest_of_rule_patient_and_key_events_whatever_the_store_order():
    first = patient_alerts(record())
    shuffled = record()
    random.Random(7).shuffle(shuffled)
    assert [a.id for a in patient_alerts(shuffled)] == [a.id for a in first]
    omission = next(a for a in first if a.rule == "unreconciled_stop")
    assert omission.id == alert_id("unreconciled_stop", "p-1", ("dc-1", "mem-1"))
    assert omission.id != alert_id("unreconciled_stop", "p-2", ("dc-1", "mem-1"))
    assert omission.id.startswith("omission-") and len(omission.id) == len("omission-") + 12


def test_an_acknowledgement_marks_the_alert_with_who_when_and_why_and_a_correction_undoes_it():
    events = record()
    target = next(a for a in patient_alerts(events) if a.drug == "memantine").id
    events.append(ack(target, "2007-12-03T12:00:00-08:00", "restarted by the nursing home", "ack-1"))
    [a] = [a for a in patient_alerts(events) if a.id == target]
    assert (a.status, a.acknowledged) == ("acknowledged", {"by": "pharm.diaz", "at": "2007-12-03T12:00:00-08:00",
                                                           "reason": "restarted by the nursing home",
                                                           "event_id": "ack-1"})
    [other] = [a for a in patient_alerts(events) if a.id != target]
    assert (other.rule, other.status, other.acknowledged) == ("opioid_benzodiazepine", "resolved", None)
    events.append(ev("entered_in_error", "2007-12-03T12:30:00-08:00", target_event_id="ack-1",
                     reason="acknowledged the wrong alert"))
    assert next(a for a in patient_alerts(events) if a.id == target).status == "open"


def test_at_reads_the_record_up_to_a_clinical_time_and_known_at_what_was_recorded_by_then():
    events = record() + [ack("x", "2007-12-03T12:00:00-08:00", "n/a", "ack-x")]
    before_discharge = patient_alerts(events, at=instant("2007-12-01T00:00:00-08:00"))
    assert [a.rule for a in before_discharge] == ["opioid_benzodiazepine"]
    assert [a.rule for a in patient_alerts(events)] == ["opioid_benzodiazepine", "unreconciled_stop"]
    # the discharge was charted at 11:05: at 11:02 the record did not show it yet
    assert [a.rule for a in patient_alerts(events, known_at=instant("2007-12-03T11:02:00-08:00"))] == \
        ["opioid_benzodiazepine"]
    assert patient_alerts(events, at=instant("2007-10-15T10:39:00-07:00")) == []


def test_open_first_then_most_severe_then_latest():
    events = record()
    found = patient_alerts(events)
    events.append(ack(found[1].id, "2007-12-04T09:00:00-08:00", "reviewed", "ack-2"))
    events.append(order("2007-12-05T09:00:00-08:00", "lz-2", "lorazepam", "po",
                        {"form": "as_needed", "dose": mg(1), "frequency": "q8h"}, event_id="o-lz-2"))
    ranked = by_urgency(patient_alerts(events))
    assert [(a.status, a.severity, a.rule, a.at) for a in ranked] == [
        ("open", "high", "opioid_benzodiazepine", instant("2007-12-05T09:00:00-08:00")),
        ("acknowledged", "high", "unreconciled_stop", instant("2007-12-03T11:00:00-08:00")),
        ("resolved", "high", "opioid_benzodiazepine", instant("2007-10-15T10:40:00-07:00"))]


def test_a_resolution_counts_from_when_it_happened_and_outranks_an_acknowledgement():
    """An alert the record has put right is resolved from that clinical time (read earlier, it
    is open), whether or not someone acknowledged it first; the ack stays on it."""
    events = record()
    benzo = next(a for a in patient_alerts(events) if a.rule == "opioid_benzodiazepine")
    assert (benzo.status, benzo.resolution.at, benzo.resolution.evidence) == \
        ("resolved", instant("2007-10-17T10:00:00-07:00"), ("x-lz",))
    assert benzo.to_json(benzo_tz())["resolved"] == {
        "at": "2007-10-17T10:00:00-07:00", "evidence": ["x-lz"],
        "reason": "lorazepam and opioids no longer run together: lorazepam stopped (anxiety settled)"}
    [early] = patient_alerts(events, at=instant("2007-10-17T09:59:00-07:00"))
    assert (early.status, early.resolution) == ("open", None)
    events.append(ack(benzo.id, "2007-10-16T09:00:00-07:00", "both needed tonight", "ack-3"))
    [read] = [a for a in patient_alerts(events) if a.id == benzo.id]
    assert read.status == "resolved" and read.acknowledged["reason"] == "both needed tonight"
    [early] = patient_alerts(events, at=instant("2007-10-17T09:59:00-07:00"))
    assert early.status == "acknowledged"


def benzo_tz():
    from projections.timeline import zone

    return zone("America/Los_Angeles")


def test_a_patient_without_a_time_zone_or_without_events_has_no_alerts():
    assert patient_alerts([]) == []
    no_zone = [e for e in record() if e["type"] != "patient_registered"]
    assert patient_alerts(no_zone) == []


def test_an_acknowledgement_made_later_does_not_move_the_clinical_horizon():
    """A still-running infusion counts up to the last clinical event, not up to the acknowledgement."""
    from tests.unit.test_alert_config import only as only_rules

    events = [registered(), admitted("2007-10-14T09:00:00-07:00"),
              order("2007-10-15T00:00:00-07:00", "mo", "morphine", "iv", infusion(1, "mg/h")),
              ev("weight_recorded", "2007-10-15T12:00:00-07:00", weight=mg(80, "kg"))]
    settings = only_rules("mme_threshold", "mme_rise")
    before = all_alerts(events, settings=settings)
    assert [a.severity for a in before] == []  # 12 h x 3 MME/h = 36 MME on the only day
    later = events + [ack("whatever", "2026-01-05T10:00:00-08:00", "reviewed", "ack-late")]
    assert all_alerts(later, settings=settings) == []


def test_a_later_correction_applies_at_an_earlier_clinical_time_but_not_before_it_was_known():
    events = record() + [ev("entered_in_error", "2007-10-20T09:00:00-07:00", recorded_at="2007-10-20T09:00:00-07:00",
                            target_event_id="o-lz", reason="ordered on the wrong patient")]
    at = instant("2007-10-16T00:00:00-07:00")
    assert patient_alerts(events, at=at) == []  # lorazepam was never this patient's
    assert [a.rule for a in patient_alerts(events, at=at, known_at=instant("2007-10-16T00:00:00-07:00"))] == \
        ["opioid_benzodiazepine"]  # what the record showed then
