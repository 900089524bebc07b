"""A full rebuild gives exactly the same tables as incremental catch-up at any split points."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mar.recording import Recorder
from mar.store import EventStore
from projections.events_table import EventsProjection
from projections.medication import MedicationProjection
from projections.runner import Runner
from tests.integration.projection_streams import ACTIONS, build_stream

intention = st.tuples(st.integers(0, len(ACTIONS) - 1), st.integers(0, 99), st.integers(0, 999),
                      st.floats(0, 1, allow_nan=False))


def dump(runner: Runner) -> dict[str, list]:
    db = runner.db
    out = {}
    for table in db.table_names():
        if table == "_projections":
            out[table] = db.execute("SELECT name, position, version FROM _projections ORDER BY name").fetchall()
            continue
        cols = [c.name for c in db[table].columns]
        rows = db.execute(f"SELECT * FROM [{table}]").fetchall()
        out[table] = sorted(rows, key=lambda r: tuple((v is None, str(type(v)), v if v is not None else 0) for v in r))
        assert cols
    return out


def runner(store, path, refold_above):
    return Runner(store, path, [EventsProjection(), MedicationProjection(refold_above=refold_above)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(intentions=st.lists(intention, min_size=40, max_size=250),
       cuts=st.lists(st.floats(0, 1), max_size=6),
       step=st.integers(1, 60),
       refold_above=st.sampled_from([0, 3, 1000]),
       patients=st.integers(1, 3))
def test_incremental_catch_up_equals_full_rebuild(tmp_path_factory, intentions, cuts, step, refold_above,
                                                 patients):
    tmp = tmp_path_factory.mktemp("prop")
    events = build_stream(intentions, patients)
    with EventStore(str(tmp / "mar.db")) as store:
        Recorder(store, "prop.test").record([(i, e) for i, e in enumerate(events, 1)])
        top = store.max_position()
        with runner(store, str(tmp / "inc.db"), refold_above) as inc:
            for cut in sorted({int(c * top) for c in cuts} | set(range(step, top, step))):
                inc.catch_up(upto=cut)
            inc.catch_up()
            incremental = dump(inc)
        with runner(store, str(tmp / "full.db"), 1000) as full:
            full.rebuild()
            rebuilt = dump(full)
    assert incremental.keys() == rebuilt.keys()
    for table in rebuilt:
        assert incremental[table] == rebuilt[table], table
    assert len(rebuilt["events"]) == len(events)
