"""Fast local clock and timestamp parsing agree with zoneinfo and datetime everywhere."""
from __future__ import annotations

import random
from bisect import bisect_right
from datetime import date, timedelta

import pytest

from projections.timeline import LocalClock, hour_slices, instant, offset_spans, to_datetime, zone

ZONES = ["America/Los_Angeles", "Asia/Kolkata", "Australia/Adelaide", "Australia/Lord_Howe", "America/St_Johns",
         "Europe/London", "UTC"]


@pytest.mark.parametrize("name", ZONES)
def test_clock_matches_zoneinfo_on_random_instants(name):
    tz = zone(name)
    local = LocalClock(tz)
    rng = random.Random(name)
    for i in range(20_000):
        us = rng.randrange(0, 2_100_000_000) * 1_000_000 + (rng.randrange(1_000_000) if i % 3 == 0 else 0)
        expected = to_datetime(us, tz)
        assert local.iso(us) == expected.isoformat()
        assert local.offset(us) == expected.utcoffset() // timedelta(microseconds=1)
        assert local.day_hour(us) == (expected.date(), expected.hour)
        d, hour, fold, start = local.hour_slot(us)
        assert (d, hour) == (expected.date(), expected.hour) and start <= us < start + 3_600_000_000
        assert instant(expected.isoformat()) == us


def test_instant_reads_every_stored_shape_and_refuses_naive_times():
    assert instant("1970-01-01T00:00:00Z") == 0
    assert instant("1970-01-01T01:00:00+01:00") == 0
    assert instant("1970-01-01T00:00:00.000001+00:00") == 1
    assert instant("2007-10-15T00:00:00-07:00") == instant("2007-10-15T07:00:00+00:00")
    with pytest.raises(ValueError, match="no UTC offset"):
        instant("2007-10-15T00:00:00")


def test_hour_slices_of_a_25_hour_day_repeat_the_1_oclock_hour():
    slices = hour_slices(date(2007, 11, 4), zone("America/Los_Angeles"))
    assert [(h, f) for h, f, _, _ in slices[:4]] == [(0, 0), (1, 0), (1, 1), (2, 0)]
    assert len(slices) == 25


@pytest.mark.parametrize("name", ZONES)
def test_offset_spans_give_the_offsets_of_zoneinfo(name):
    tz = zone(name)
    lo, hi = 1_100_000_000_000_000, 1_700_000_000_000_000
    spans = offset_spans(tz, lo, hi)
    assert spans[0][0] == lo and spans[-1][1] == hi + 1
    assert all(a[1] == b[0] and a[2] != b[2] for a, b in zip(spans, spans[1:]))
    one_us = timedelta(microseconds=1)
    for start, end, off in spans:  # each change to the microsecond
        assert to_datetime(start, tz).utcoffset() // one_us == off == to_datetime(end - 1, tz).utcoffset() // one_us
    rng = random.Random(name)
    starts = [s[0] for s in spans]
    for _ in range(5_000):
        us = rng.randrange(lo, hi + 1)
        assert spans[bisect_right(starts, us) - 1][2] == to_datetime(us, tz).utcoffset() // one_us
