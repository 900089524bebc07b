"""`--known-at` on `mar history`, and `mar diff` between two recorded moments.

p1's record (audit_case.P1): dose 1 given 12:00, charted 12:05, entered in error at 21:00 by
rn.chief; dose 2 given 14:00 but charted 6 hours late, at 20:00, by rn.ortiz.
"""
from __future__ import annotations

import json

import pytest

from .audit_case import P1, make_store, run


@pytest.fixture
def db(runner, tmp_path):
    return make_store(runner, tmp_path, P1)


def versions(runner, db, *args) -> list[int]:
    return [e["version"] for e in json.loads(run(runner, db, "history", "p1", "--json", *args).stdout)]


def test_events_charted_later_are_not_known_before(runner, db):
    assert versions(runner, db) == [1, 2, 3, 4, 5, 6, 7]
    # 19:59: the 14:00 dose had been given but not charted yet
    assert versions(runner, db, "--known-at", "2007-10-14T19:59:00-07:00") == [1, 2, 3, 4, 5]
    # charted at 20:00 exactly: known from that moment
    assert versions(runner, db, "--known-at", "2007-10-14T20:00:00-07:00") == [1, 2, 3, 4, 5, 6]
    assert versions(runner, db, "--known-at", "2007-10-14T08:05:00-07:00") == [1]


def test_the_source_charting_time_counts_not_the_store_append_time(runner, db):
    events = json.loads(run(runner, db, "history", "p1", "--json", "--known-at", "2007-10-15T00:00:00-07:00").stdout)
    assert len(events) == 7
    assert all(e["stored_at"] > "2020" for e in events)  # appended long after 2007, known in 2007


def test_a_correction_is_not_known_before_it_was_recorded(runner, db):
    before = run(runner, db, "history", "p1", "--known-at", "2007-10-14T20:30:00-07:00").stdout.splitlines()
    after = run(runner, db, "history", "p1", "--known-at", "2007-10-14T21:00:00-07:00").stdout.splitlines()
    assert before[4] == ("    5  2007-10-14T12:00:00-07:00  rec 2007-10-14T12:05:00-07:00 by rn.lee  "
                         "dose_given  scheduled 40 mg po (order o1)")
    assert before[5] == ("    6  2007-10-14T14:00:00-07:00  rec 2007-10-14T20:00:00-07:00 by rn.ortiz  "
                         "dose_given  scheduled 40 mg po (order o1)  LATE")
    assert after[4] == before[4] + "  ENTERED IN ERROR by rn.chief"
    assert after[6] == ("    7  2007-10-14T21:00:00-07:00  rec 2007-10-14T21:00:00-07:00 by rn.chief  "
                        "entered_in_error  corrects p1/dose/1 (charted on the wrong patient)")
    correction = json.loads(run(runner, db, "history", "p1", "--json").stdout)[4]["entered_in_error_by"]
    assert correction == {"event_id": correction["event_id"], "version": 7, "recorded_by": "rn.chief",
                          "recorded_at": "2007-10-14T21:00:00-07:00", "reason": "charted on the wrong patient"}


@pytest.mark.parametrize("when", ["2007-10-14T19:59:00-07:00", "2007-10-14T19:59", "2007-10-15T02:59:00Z",
                                  "2007-10-15T02:59:00+00:00"])
def test_times_without_offset_are_in_the_patient_zone(runner, db, when):
    assert versions(runner, db, "--known-at", when) == [1, 2, 3, 4, 5]


def test_a_time_that_is_not_a_time_is_refused(runner, db):
    result = run(runner, db, "history", "p1", "--known-at", "yesterday", code=1)
    assert result.stderr == ("Error: 'yesterday' is not an ISO 8601 time "
                             "(for example 2007-10-15T14:00:00-07:00)\n")


# --- diff ---------------------------------------------------------------------------------------


def test_diff_shows_late_charting_and_corrections_recorded_in_between(runner, db):
    result = run(runner, db, "diff", "p1", "--known-at", "2007-10-14T13:00:00-07:00",
                 "--known-at", "2007-10-14T22:00:00-07:00")
    assert result.stdout.splitlines() == [
        "p1: recorded after 2007-10-14T13:00:00-07:00 and by 2007-10-14T22:00:00-07:00: 2 events, 1 entered in error",
        "+    6  2007-10-14T14:00:00-07:00  rec 2007-10-14T20:00:00-07:00 by rn.ortiz  "
        "dose_given  scheduled 40 mg po (order o1)  LATE",
        "+    7  2007-10-14T21:00:00-07:00  rec 2007-10-14T21:00:00-07:00 by rn.chief  "
        "entered_in_error  corrects p1/dose/1 (charted on the wrong patient)",
        "-    5  2007-10-14T12:00:00-07:00  dose_given  scheduled 40 mg po (order o1)  "
        "entered in error by rn.chief at 2007-10-14T21:00:00-07:00: charted on the wrong patient",
    ]


def test_diff_json(runner, db):
    changes = json.loads(run(runner, db, "diff", "p1", "--known-at", "2007-10-14T13:00",
                             "--known-at", "2007-10-14T20:30", "--json").stdout)
    assert (changes["since"], changes["until"]) == ("2007-10-14T13:00:00-07:00", "2007-10-14T20:30:00-07:00")
    assert [e["version"] for e in changes["added"]] == [6]
    assert changes["entered_in_error"] == []  # the correction came at 21:00


def test_diff_of_a_quiet_window_is_empty(runner, db):
    result = run(runner, db, "diff", "p1", "--known-at", "2007-10-14T21:00", "--known-at", "2007-10-15T08:00")
    assert result.stdout == ("p1: recorded after 2007-10-14T21:00:00-07:00 and by 2007-10-15T08:00:00-07:00: "
                             "0 events, 0 entered in error\n")


def test_diff_needs_two_moments_in_order(runner, db):
    result = run(runner, db, "diff", "p1", "--known-at", "2007-10-14T22:00", "--known-at", "2007-10-14T13:00", code=1)
    assert result.stderr == ("Error: give the earlier --known-at first: 2007-10-14T22:00:00-07:00 is not before "
                             "2007-10-14T13:00:00-07:00\n")
    result = run(runner, db, "diff", "p1", "--known-at", "2007-10-14T22:00", code=2)
    assert "give --known-at exactly twice" in result.stderr


def test_diff_of_an_unknown_patient(runner, db):
    result = run(runner, db, "diff", "p9", "--known-at", "2007-10-14T13:00Z", "--known-at", "2007-10-14T22:00Z", code=1)
    assert result.stderr == "Error: no patient 'p9' in this store\n"
