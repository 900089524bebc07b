"""Pairing and classifying the lines of two medication lists (projections.reconcile.compare)."""
from __future__ import annotations

from mar.catalog import default_catalog
from projections.reconcile.compare import RecentStop, compare, pair
from projections.reconcile.items import Item, differences

CAT = default_catalog()


def sched(drug, value, freq, unit="mg", route="po", source="order", order_id=None, **kw) -> Item:
    return Item(drug, route, {"form": "scheduled", "dose": {"value": value, "unit": unit}, "frequency": freq},
                source, order_id, **kw)


def prn(drug, value, freq, route="po", max_daily=None, **kw) -> Item:
    d = {"form": "as_needed", "dose": {"value": value, "unit": "mg"}, "frequency": freq}
    if max_daily:
        d["max_daily"] = {"value": max_daily, "unit": "mg"}
    return Item(drug, route, d, kw.pop("source", "list"), **kw)


def infusion(drug, value, unit, route="iv") -> Item:
    return Item(drug, route, {"form": "infusion", "rate": {"value": value, "unit": unit}}, "order")


def pca(demand, lockout, basal=None) -> Item:
    d = {"form": "pca", "demand_dose": {"value": demand, "unit": "mg"}, "lockout_minutes": lockout}
    if basal:
        d["basal_rate"] = {"value": basal, "unit": "mg/h"}
    return Item("hydromorphone", "iv", d, "order")


# --- differences ------------------------------------------------------------------------------


def test_same_amount_in_other_units_is_no_difference():
    assert differences(sched("gabapentin", 0.7, "tid", unit="g"), sched("gabapentin", 700, "tid"), CAT) == ([], [])


def test_frequencies_with_the_same_doses_per_day_are_the_same_with_a_note():
    kinds, notes = differences(sched("methadone", 40, "tid"), sched("methadone", 40, "q8h"), CAT)
    assert kinds == []
    assert notes == ["frequency written tid and q8h (same number of doses per day)"]


def test_a_synonym_of_a_route_is_the_same_route():
    assert differences(sched("methadone", 40, "tid"), sched("methadone", 40, "tid", route="oral"), CAT) == ([], [])


def test_each_kind_of_difference_is_named():
    assert differences(sched("memantine", 5, "bid"), sched("memantine", 10, "bid"), CAT)[0] == ["dose"]
    assert differences(sched("naproxen", 500, "bid"), sched("naproxen", 500, "tid"), CAT)[0] == ["frequency"]
    assert differences(sched("morphine", 10, "q4h", route="po"), sched("morphine", 10, "q4h", route="iv"), CAT)[0] \
        == ["route"]
    assert differences(sched("oxycodone", 10, "q4h"), prn("oxycodone", 5, "q4h"), CAT)[0] == ["form", "dose"]
    assert differences(infusion("ketamine", 55, "mcg/kg/h"), infusion("ketamine", 36.8, "mcg/kg/h"), CAT)[0] == ["rate"]


def test_weight_based_rates_compare_across_units():
    assert differences(infusion("ketamine", 55, "mcg/kg/h"), infusion("ketamine", 0.055, "mg/kg/h"), CAT)[0] == []
    assert differences(infusion("ketamine", 5, "mg/h"), infusion("ketamine", 0.055, "mg/kg/h"), CAT)[0] == ["rate"]


def test_pca_settings_map_to_dose_frequency_and_rate():
    assert differences(pca(1.2, 6, 1.2), pca(3, 10, 10), CAT)[0] == ["dose", "frequency", "rate"]
    assert differences(pca(1.2, 6, 1.2), pca(1.2, 6, 1.2), CAT)[0] == []


def test_as_needed_maximum_counts_as_a_dose_difference():
    kinds, notes = differences(prn("oxycodone", 5, "q4h", max_daily=30), prn("oxycodone", 5, "q4h", max_daily=20), CAT)
    assert kinds == ["dose"] and notes == ["maximum per day differs"]


# --- pairing ----------------------------------------------------------------------------------


def test_a_line_naming_an_order_pairs_with_it_before_any_other_order_of_the_drug():
    a1 = sched("hydromorphone", 2, "q4h", route="po", order_id="hm-1")
    a2 = sched("hydromorphone", 4, "q4h", route="po", order_id="hm-2")
    line = sched("hydromorphone", 4, "q4h", source="list", order_id="hm-2")
    pairs, gone, came = pair([a1, a2], [line], CAT)
    assert pairs == [(a2, line)] and gone == [a1] and came == []


def test_without_order_ids_the_closest_route_and_form_pairs_first():
    iv = infusion("hydromorphone", 2, "mg/h")
    po = sched("hydromorphone", 4, "q4h")
    line = sched("hydromorphone", 8, "q4h", source="list")
    pairs, gone, _ = pair([iv, po], [line], CAT)
    assert pairs == [(po, line)] and gone == [iv]


# --- classification ---------------------------------------------------------------------------


def classify(before, after, decisions=(), orders=False, stops=()):
    lines = compare(list(before), list(after), list(decisions), CAT, after_are_orders=orders,
                    recent_stops=list(stops))
    return {x.drug: x for x in lines}


def test_continued_changed_new_and_omitted():
    got = classify([sched("methadone", 40, "tid"), sched("memantine", 10, "bid"), sched("naproxen", 500, "bid")],
                   [sched("methadone", 40, "tid", source="list"), sched("naproxen", 500, "tid", source="list"),
                    sched("senna", 8.6, "daily", source="list")])
    assert {d: (x.status, x.discrepancy, x.documentation, x.reconciled) for d, x in got.items()} == {
        "methadone": ("continued", [], None, True),
        "naproxen": ("changed", ["frequency"], "undocumented", False),
        "memantine": ("omitted", ["omission"], "undocumented", False),
        "senna": ("new", ["commission"], "undocumented", False),
    }
    assert got["senna"].notes == ["on the list after with no active order and no documented decision"]


def test_decisions_document_changes_and_stops():
    got = classify([sched("naproxen", 500, "bid"), sched("ketorolac", 30, "q8h", route="iv"),
                    sched("lorazepam", 1, "q6h", route="iv")],
                   [sched("naproxen", 500, "tid", source="list")],
                   [{"drug": "naproxen", "action": "change", "reason": "pain: 1500 mg/day"},
                    {"drug": "Ketorolac", "action": "stop", "reason": "renal function"},
                    {"drug": "lorazepam", "action": "hold", "reason": "sedated"}])
    assert (got["naproxen"].status, got["naproxen"].documentation, got["naproxen"].reason) == \
        ("changed", "documented", "pain: 1500 mg/day")
    assert (got["ketorolac"].status, got["ketorolac"].reason, got["ketorolac"].reconciled) == \
        ("stopped", "renal function", True)
    assert got["lorazepam"].status == "stopped" and got["lorazepam"].notes == ["held, not stopped: to be reviewed"]


def test_a_decision_naming_another_order_does_not_document_this_one():
    got = classify([sched("oxycodone", 10, "q4h", order_id="oxy-1")], [],
                   [{"drug": "oxycodone", "action": "stop", "reason": "x", "order_id": "oxy-9"}])
    assert got["oxycodone"].status == "omitted"


def test_a_decision_to_continue_does_not_excuse_leaving_it_off():
    got = classify([sched("memantine", 10, "bid")], [], [{"drug": "memantine", "action": "continue", "reason": "pain"}])
    x = got["memantine"]
    assert x.status == "omitted" and not x.reconciled
    assert x.notes == ["a decision keeps it (pain), but the list after leaves it out"]


def test_a_stopped_drug_still_on_the_list_is_a_commission():
    got = classify([sched("naproxen", 500, "bid")], [sched("naproxen", 500, "bid", source="list")],
                   [{"drug": "naproxen", "action": "stop", "reason": "bleeding"}])
    x = got["naproxen"]
    assert (x.status, x.discrepancy, x.documentation) == ("continued", ["commission"], "undocumented")


def test_new_orders_at_admission_are_their_prescribers_decision():
    got = classify([], [sched("memantine", 10, "bid", indication="neuropathic pain")], orders=True)
    x = got["memantine"]
    assert (x.status, x.documentation, x.reason, x.reconciled) == ("new", "documented", "neuropathic pain", True)


def test_an_order_discontinued_just_before_is_a_documented_stop_unless_its_drug_is_still_there():
    ket = sched("ketorolac", 30, "q8h", route="iv")
    got = classify([sched("naproxen", 500, "bid")], [sched("naproxen", 500, "bid", source="list")],
                   stops=[RecentStop(ket, 0, "replaced by oral naproxen"),
                          RecentStop(sched("naproxen", 250, "bid"), 0, "dose raised")])
    assert (got["ketorolac"].status, got["ketorolac"].reason) == ("stopped", "replaced by oral naproxen")
    assert got["naproxen"].status == "continued"
