"""The alerts' daily opioid amounts are `totals.amounts` itself: doses placed in their day's slot
the way it places them (its `parts`), so the sums are the same numbers."""
from __future__ import annotations

import random
from types import SimpleNamespace

from projections.alerts.opioid_use import _dose_parts
from projections.course import Administration
from projections.timeline import instant, zone
from projections.totals import amounts


def test_doses_placed_by_the_alerts_give_the_rows_of_totals_across_a_daylight_saving_change():
    tz = zone("America/Los_Angeles")
    rng = random.Random(3)
    start = instant("2020-03-06T00:00:00-08:00")  # the clocks go forward on 2020-03-08
    doses = sorted(
        Administration(start + rng.randrange(5 * 24 * 3600) * 1_000_000, n, f"e{n}", "o1",
                       rng.choice(["hydromorphone", "oxycodone"]), rng.choice(["iv", "po"]), "as_needed",
                       rng.choice([0.2, 0.5, 1.2, 7.5]))
        for n in range(400))
    pieces = [(start + 3_600_000_000, start + 50 * 3_600_000_000, "hydromorphone", "iv", 0.4)]
    until = start + 5 * 24 * 3_600_000_000
    expected = amounts([(a.at, a.drug, a.route, a.mg) for a in doses], pieces, tz, until, "day")
    got = amounts((), pieces, tz, until, "day", parts=_dose_parts(SimpleNamespace(tz=tz), doses))
    assert got == expected
    # 5 x 24 h from midnight of the 6th end at 01:00 on the 11th: the 8th had 23 hours
    assert sorted({r.date for r in got}) == ["2020-03-06", "2020-03-07", "2020-03-08", "2020-03-09", "2020-03-10",
                                             "2020-03-11"]
