"""The SQL rebuild (doses dated in SQL, offsets per zone) against catch-up and zoneinfo, at the
edges: local midnight, the 23- and 25-hour days, half-hour zones, fractional seconds, mcg."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mar.recording import Recorder
from mar.store import EventStore
from projections.events_table import EventsProjection, FIELDS
from projections.medication import MedicationProjection
from projections.runner import Runner
from tests.integration.test_projections_property import dump

UTC = timezone.utc
# (zone, a UTC instant just before one of its offset changes)
CHANGES = [
    ("America/Los_Angeles", datetime(2020, 3, 8, 9, 30, tzinfo=UTC)),  # 23-hour day
    ("America/Los_Angeles", datetime(2020, 11, 1, 8, 30, tzinfo=UTC)),  # 25-hour day
    ("Australia/Lord_Howe", datetime(2020, 4, 4, 14, 45, tzinfo=UTC)),  # half-hour change
    ("Asia/Kolkata", datetime(2020, 6, 1, 18, 0, tzinfo=UTC)),  # local midnight at 18:30 UTC
]


def q(v, unit):
    return {"value": v, "unit": unit}


def patient_events(n: int, zone: str, change: datetime) -> list[dict]:
    """A registration, an oral and an IV order, an infusion across the change, and doses every
    7.5 minutes from 3 hours before it to 3 hours after, some with fractional seconds."""
    pid = f"p{n}"
    start = change - timedelta(days=1)

    def e(event_type: str, at: datetime, **fields) -> dict:
        return {"type": event_type, "patient_id": pid, "effective_at": at.astimezone(ZoneInfo(zone)).isoformat(), **fields}

    out = [
        e("patient_registered", start, timezone=zone),
        e("weight_recorded", start, weight=q(70, "kg")),
        e("admitted", start, location="ward"),
        e("medication_ordered", start, order_id="oxy", drug="oxycodone", route="po",
          dosing={"form": "as_needed", "dose": q(5, "mg"), "frequency": "q1h"}, prescriber="dr.a"),
        e("medication_ordered", start, order_id="fen", drug="fentanyl", route="iv",
          dosing={"form": "as_needed", "dose": q(25, "mcg"), "frequency": "q1h"}, prescriber="dr.a"),
        e("medication_ordered", change - timedelta(hours=5), order_id="hm", drug="hydromorphone", route="iv",
          dosing={"form": "infusion", "rate": q(1.3, "mg/h")}, prescriber="dr.a"),
    ]
    t = change - timedelta(hours=3)
    i = 0
    while t < change + timedelta(hours=3):
        at = t + timedelta(microseconds=123456) if i % 3 == 0 else t
        if i % 2:
            out.append(e("dose_given", at, order_id="oxy", dose=q(5, "mg"), route="po", kind="as_needed"))
        else:
            out.append(e("dose_given", at, order_id="fen", dose=q(12.5 + i % 4, "mcg"), route="IV", kind="as_needed"))
        t += timedelta(minutes=7, seconds=30)
        i += 1
    out.append(e("order_discontinued", change + timedelta(hours=4), order_id="hm", reason="stop"))
    return out


@pytest.fixture
def store(tmp_path):
    events = [x for n, (zone, change) in enumerate(CHANGES) for x in patient_events(n, zone, change)]
    with EventStore(str(tmp_path / "mar.db")) as s:
        Recorder(s, "rebuild.test").record([(i, x) for i, x in enumerate(events, 1)])
        yield s


def models(store, path: Path) -> Runner:
    return Runner(store, str(path), [EventsProjection(), MedicationProjection()])


def test_the_sql_rebuild_equals_catch_up_one_event_at_a_time(store, tmp_path):
    with models(store, tmp_path / "inc.db") as inc:
        for upto in range(1, store.max_position() + 1):
            inc.catch_up(upto=upto)
        incremental = dump(inc)
    with models(store, tmp_path / "full.db") as full:
        full.rebuild()
        rebuilt = dump(full)
    assert rebuilt == incremental


def test_rebuilt_daily_totals_follow_the_local_calendar(store, tmp_path):
    with models(store, tmp_path / "full.db") as full:
        full.rebuild()
        for n, (zone, change) in enumerate(CHANGES):
            pid = f"p{n}"
            tz = ZoneInfo(zone)
            doses = {}
            for at_text, drug, mg in full.db.execute(
                    "SELECT at, drug, amount_mg FROM administrations WHERE patient_id = ?", (pid,)):
                day = datetime.fromisoformat(at_text).astimezone(tz).date().isoformat()
                doses.setdefault((day, drug), []).append(mg)
            got = {(d, drug): mg for d, drug, mg in full.db.execute(
                "SELECT date, drug, amount_mg FROM daily_totals WHERE patient_id = ? AND drug != 'hydromorphone'",
                (pid,))}
            assert got == {k: math.fsum(v) for k, v in doses.items()}, zone
            infused = full.db.execute("SELECT SUM(amount_mg) FROM daily_totals WHERE patient_id = ? "
                                      "AND drug = 'hydromorphone'", (pid,)).fetchone()[0]
            assert infused == pytest.approx(1.3 * 9)  # 9 hours of 1.3 mg/h, however the days split


def test_a_day_of_23_or_25_hours_gets_as_many_hours_of_infusion(store, tmp_path):
    with models(store, tmp_path / "full.db") as full:
        full.rebuild()
        rows = dict(full.db.execute("SELECT date, amount_mg FROM daily_totals WHERE patient_id = 'p0' "
                                    "AND drug = 'hydromorphone'"))
        # started 2020-03-07 20:30 PST, stopped 2020-03-08 06:30 PDT: 3.5 h, then 5.5 h on a 23-hour day
        assert rows == {"2020-03-07": pytest.approx(1.3 * 3.5), "2020-03-08": pytest.approx(1.3 * 5.5)}


def test_the_events_view_reads_the_fields_from_the_json(store, tmp_path):
    with models(store, tmp_path / "full.db") as full:
        full.rebuild()
        row = full.db.execute(f"SELECT {', '.join(FIELDS)}, data FROM event_fields WHERE position = 4").fetchone()
        assert row[1] == "medication_ordered" and row[5] == "oxy" and row[4] == "rebuild.test"
        assert [c.name for c in full.db["events"].columns] == ["position", "patient_id", "structural", "data"]


def test_the_scratch_database_is_gone_after_a_rebuild(store, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with models(store, tmp_path / "full.db") as full:
        full.rebuild()
    assert not list(tmp_path.glob("mar-rebuild-*"))
