"""The chart a store object keeps between writes (EventStore.remember_charts).

A workstation recording dose after dose reuses the chart it last wrote; these tests pin what
must stay true: another writer's events are seen, and a refused write leaves nothing behind.
"""
from __future__ import annotations

import pytest

from mar.errors import InvalidEvents
from mar.recording import Recorder
from mar.store import EventStore
from tests.integration.synthetic import chart_start, dose

P = "cache-1"


def _stop(key: str) -> dict:
    return {"type": "order_discontinued", "patient_id": P, "order_id": f"{P}-apap",
            "effective_at": "2024-01-01T09:00:00+00:00", "reason": "no longer needed", "idempotency_key": key}


def test_another_writers_events_are_seen(store_url):
    with EventStore(store_url) as first, EventStore(store_url) as second:
        nurse = Recorder(first, "rn.first")
        nurse.record(list(enumerate(chart_start(P), 1)))
        nurse.record([(1, dose(P, 0))])  # first now keeps the chart at version 4
        Recorder(second, "rn.second").record([(1, _stop("stop-1"))])
        # 09:15: after the stop that only the second store object wrote
        late = {**dose(P, 9), "effective_at": "2024-01-01T09:15:00+00:00"}
        with pytest.raises(InvalidEvents) as err:
            nurse.record([(1, late)])
        assert "discontinued" in str(err.value)
        assert len(first.stream(P)) == 5


def test_a_refused_write_leaves_no_trace_in_the_kept_chart(store_url):
    with EventStore(store_url) as store:
        nurse = Recorder(store, "rn.first")
        nurse.record(list(enumerate(chart_start(P), 1)))
        bad_dose = {**dose(P, 1), "dose": {"value": 500, "unit": "parsecs"}}
        with pytest.raises(InvalidEvents) as err:
            nurse.record([(1, _stop("stop-1")), (2, bad_dose)])
        assert "line 2" in str(err.value) and "line 1" not in str(err.value)  # the stop passed its checks
        # nothing was stored, so the order is still active and the next dose is accepted
        summary = nurse.record([(1, {**dose(P, 9), "effective_at": "2024-01-01T09:15:00+00:00"})])
        assert summary.added == 1
        assert [r.data["type"] for r in store.stream(P)][-1] == "dose_given"
