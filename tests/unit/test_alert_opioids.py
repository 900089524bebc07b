"""Opioid alerts: daily MME thresholds and rise, opioid with benzodiazepine, duplicate
as-needed opioids, and the failed adjuvant taper."""
from __future__ import annotations

from projections.alerts.engine import patient_alerts
from projections.timeline import instant
from tests.unit.test_alert_config import only
from tests.unit.projection_events import admitted, ev, given, infusion, mg, order, rate, registered, scheduled, weight

DAY = "2007-10-{:02d}T{}:00-07:00"


def morphine_days(*days_doses):
    """Oral morphine (1 MME per mg): day n gets the listed doses at 08:00, 12:00, 16:00 ..."""
    events = [registered(), admitted("2007-10-01T07:00:00-07:00"),
              order("2007-10-01T07:30:00-07:00", "mo", "morphine", "po", scheduled(10, "q4h"))]
    for n, doses in enumerate(days_doses, start=1):
        for i, value in enumerate(doses):
            events.append(given(DAY.format(n, f"{8 + 4 * i:02d}:00"), "mo", value, route="po", kind="scheduled",
                                event_id=f"d{n}-{i}"))
    return events


def test_thresholds_are_raised_on_the_day_crossed_not_repeated_and_again_after_a_day_below():
    events = morphine_days([40], [30, 30], [60], [50, 50], [20], [120])
    found = patient_alerts(events, settings=only("mme_threshold"))
    got = [(a.severity, a.at, a.evidence[0]) for a in found]
    assert got == [
        ("moderate", instant(DAY.format(2, "12:00")), "d2-1"),  # 30 + 30 = 60 reaches 50 at the second dose
        ("high", instant(DAY.format(4, "12:00")), "d4-1"),      # 50 + 50 = 100 reaches 90
        ("high", instant(DAY.format(6, "08:00")), "d6-0"),      # 120 crosses 50 and 90: only the highest
    ]
    assert found[0].message.startswith("Opioids given on 2007-10-02 reached 50 MME/day at 12:00 (day total 60 MME "
                                       "under cdc-2022: morphine po 60 mg = 60 MME)")
    assert len({a.id for a in found}) == 3


def test_threshold_reached_by_an_infusion_at_the_exact_instant():
    # IV morphine 1 mg/h = 3 MME/h (cdc-2022 parenteral factor 3): 50 MME after 16 h 40 min
    events = [registered(), admitted("2007-10-01T07:00:00-07:00"),
              order("2007-10-02T00:00:00-07:00", "mo-iv", "morphine", "iv", infusion(1, "mg/h"), event_id="o-iv"),
              weight("2007-10-03T06:00:00-07:00", 80)]
    [a] = [a for a in patient_alerts(events, settings=only("mme_threshold")) if a.severity == "moderate"]
    assert a.at == instant("2007-10-02T16:40:00-07:00")
    assert a.evidence[0] == "o-iv"


def test_a_day_over_day_rise_above_the_percentage():
    events = morphine_days([40], [60], [100], [5], [120])
    found = patient_alerts(events, settings=only("mme_rise"))
    # 40 -> 60 is +50 %, 60 -> 100 is +67 %: no; 5 -> 120: the day before is under 10 MME: no
    assert found == []
    found = patient_alerts(events, settings=only("mme_rise", mme_rise={"rise_percent": 50, "min_previous_mme": 5}))
    assert [(a.at, a.evidence[0]) for a in found] == [
        (instant(DAY.format(3, "08:00")), "d3-0"),  # 100 > 60 x 1.5
        (instant(DAY.format(5, "08:00")), "d5-0"),  # 120 > 5 x 1.5
    ]
    assert found[0].message.startswith("Opioid use rose 67% from 2007-10-02 (60 MME) to 2007-10-03 (100 MME")


def combination_events():
    return [
        registered(), admitted("2007-10-14T09:00:00-07:00"),
        order("2007-10-15T10:30:00-07:00", "hm", "hydromorphone", "iv", infusion(2, "mg/h"), event_id="o-hm"),
        order("2007-10-15T10:40:00-07:00", "lz", "lorazepam", "iv",
              {"form": "as_needed", "dose": mg(1), "frequency": "q6h"}, event_id="o-lz"),
    ]


def test_an_opioid_and_a_benzodiazepine_active_together():
    [a] = patient_alerts(combination_events(), settings=only("opioid_benzodiazepine"))
    assert (a.severity, a.drug, a.at, a.evidence) == ("high", "lorazepam", instant("2007-10-15T10:40:00-07:00"),
                                                      ["o-lz", "o-hm"])
    assert a.message.startswith("lorazepam iv 1 mg q6h as needed (order lz) is active together with opioids from "
                                "2007-10-15 10:40: hydromorphone iv infusion 2 mg/h (order hm).")


def test_a_benzodiazepine_on_hold_while_the_opioid_runs_is_no_alert():
    events = combination_events() + [
        ev("order_held", "2007-10-15T10:40:00-07:00", order_id="lz", reason="sedated"),
        ev("order_discontinued", "2007-10-16T10:00:00-07:00", order_id="hm", reason="pain controlled"),
        ev("order_resumed", "2007-10-16T11:00:00-07:00", order_id="lz"),
    ]
    assert patient_alerts(events, settings=only("opioid_benzodiazepine")) == []


def test_two_as_needed_opioids_together_but_not_one_after_the_other():
    prn = lambda v: {"form": "as_needed", "dose": mg(v), "frequency": "q4h"}  # noqa: E731
    base = [registered(), admitted("2007-10-14T09:00:00-07:00"),
            order("2007-10-14T10:00:00-07:00", "oxy", "oxycodone", "po", prn(10), event_id="o-oxy")]
    later = order("2007-10-14T12:00:00-07:00", "mor", "morphine", "iv", prn(4), event_id="o-mor")
    [a] = patient_alerts(base + [later], settings=only("duplicate_opioid"))
    assert (a.drug, a.at, a.evidence) == ("morphine, oxycodone", instant("2007-10-14T12:00:00-07:00"),
                                          ["o-mor", "o-oxy"])
    stop = ev("order_discontinued", "2007-10-14T11:00:00-07:00", order_id="oxy", reason="switch to IV")
    assert patient_alerts(base + [stop, later], settings=only("duplicate_opioid")) == []
    scheduled_morphine = order("2007-10-14T12:00:00-07:00", "mor", "morphine", "po", scheduled(10, "q4h"))
    assert patient_alerts(base + [scheduled_morphine], settings=only("duplicate_opioid")) == []


def taper_events(raise_at: str | None, until: str = "2007-10-17T14:00:00-07:00"):
    """Ketamine 55 mcg/kg/h at 91 kg (5.005 mg/h) beside hydromorphone 2 mg/h; ketamine halved on
    10-16 at 12:00; hydromorphone raised to 4 mg/h at `raise_at`."""
    events = [registered(), weight("2007-10-14T08:00:00-07:00", 91), admitted("2007-10-14T09:00:00-07:00"),
              order("2007-10-15T00:00:00-07:00", "ket", "ketamine", "iv", infusion(55, "mcg/kg/h"), event_id="o-ket"),
              order("2007-10-15T00:00:00-07:00", "hm", "hydromorphone", "iv", infusion(2, "mg/h"), event_id="o-hm"),
              ev("order_changed", "2007-10-16T12:00:00-07:00", order_id="ket", rate=mg(27.5, "mcg/kg/h"),
                 reason="taper", event_id="taper-1")]
    if raise_at:
        events.append(rate(raise_at, "hm", 4, "mg/h", "pain 7/10"))
        events[-1]["event_id"] = "hm-up"
    events.append(weight(until, 91))  # charting up to here: the record's horizon
    return events


def test_a_rise_in_opioid_use_after_an_adjuvant_reduction_is_a_failed_taper():
    [a] = patient_alerts(taper_events("2007-10-16T14:00:00-07:00"), settings=only("adjuvant_taper"))
    # 24 h before: 48 mg; 24 h after: 2 h x 2 + 22 h x 4 = 92 mg (x 20 MME/mg): +92 %
    assert (a.severity, a.drug, a.at) == ("moderate", "ketamine", instant("2007-10-16T12:00:00-07:00"))
    assert a.evidence == ["taper-1", "o-ket", "hm-up"]
    assert a.message.startswith("ketamine iv (order ket) reduced from 5 to 2.5 mg/h at 2007-10-16 12:00 (taper); "
                                "opioid use then rose 92%: 1,840 MME per 24 h in the 24 h after, against 960 in the "
                                "24 h before.")


def test_no_rise_or_too_short_a_record_after_the_reduction_is_no_alert():
    assert patient_alerts(taper_events(None), settings=only("adjuvant_taper")) == []
    late_rise = taper_events("2007-10-16T14:00:00-07:00", until="2007-10-16T17:00:00-07:00")
    assert patient_alerts(late_rise, settings=only("adjuvant_taper")) == []  # 5 h after: under min_hours
    assert len(patient_alerts(late_rise, settings=only("adjuvant_taper", adjuvant_taper={"min_hours": 4}))) == 1
    small = patient_alerts(taper_events("2007-10-16T14:00:00-07:00"),
                           settings=only("adjuvant_taper", adjuvant_taper={"rise_percent": 95}))
    assert small == []


def test_scheduled_opioid_doses_count_at_their_ordered_rate_not_one_by_one():
    """Methadone 10 mg q8h with a dose missed the day before a ketamine reduction: counted dose
    by dose the 24 h before hold 2 doses and the 24 h after 3 (+50 %), a rise out of nothing."""
    events = [registered(), weight("2007-10-14T08:00:00-07:00", 91), admitted("2007-10-14T09:00:00-07:00"),
              order("2007-10-14T09:30:00-07:00", "met", "methadone", "po", scheduled(10, "q8h")),
              order("2007-10-14T09:30:00-07:00", "ket", "ketamine", "iv", infusion(55, "mcg/kg/h"))]
    for day in (14, 15, 16, 17):
        for hour in ("06", "14", "22"):
            if (day, hour) != (15, "22") and (day, hour) != (14, "06"):
                events.append(given(f"2007-10-{day}T{hour}:00:00-07:00", "met", 10, route="po", kind="scheduled"))
    events.append(ev("order_changed", "2007-10-16T12:00:00-07:00", order_id="ket", rate=mg(27.5, "mcg/kg/h"),
                     reason="taper"))
    assert patient_alerts(events, settings=only("adjuvant_taper")) == []
    # a raised methadone order is a rise all the same: before, 30 mg/day x 4.7 = 141 MME; after,
    # 1 h at 30 mg/day + 23 h at 60 mg/day = 1.25 + 57.5 = 58.75 mg x 4.7 = 276.1 MME (+96 %)
    events.append(ev("order_changed", "2007-10-16T13:00:00-07:00", order_id="met", dose=mg(20), reason="pain"))
    [a] = patient_alerts(events, settings=only("adjuvant_taper"))
    assert "opioid use then rose 96%: 276 MME per 24 h in the 24 h after, against 141 in the 24 h before" \
        in a.message


def test_further_steps_of_one_taper_join_the_first_alert():
    events = taper_events("2007-10-16T14:00:00-07:00")
    events.insert(-1, ev("order_changed", "2007-10-16T18:00:00-07:00", order_id="ket", rate=mg(13.8, "mcg/kg/h"),
                         reason="taper", event_id="taper-2"))
    [a] = patient_alerts(events, settings=only("adjuvant_taper"))
    assert a.evidence == ["taper-1", "o-ket", "hm-up", "taper-2"]
