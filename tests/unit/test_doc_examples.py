"""docs/event-format.md cannot go stale: every JSON example on it validates, every event
type has an example, and the Examples section, recorded in order, passes every check."""
from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from mar.events import BY_TYPE, EVENT_ADAPTER, Dosing
from mar.recording import Recorder
from mar.store import EventStore

DOC = Path(__file__).resolve().parents[2] / "docs" / "event-format.md"
FENCE = re.compile(r"^```json\n(.*?)^```", re.S | re.M)
DOSING_ADAPTER = TypeAdapter(Dosing)


def json_values(text: str) -> list:
    """Every JSON value in a block: one object, or several one after another."""
    decoder, values, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return values
        value, i = decoder.raw_decode(text, i)
        values.append(value)


def blocks(markdown: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```json block."""
    return [(markdown.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(markdown)]


def section_examples(markdown: str) -> list[tuple[int, str, dict]]:
    """(line, type named by its ### heading, event) for each example of the Examples section."""
    start = markdown.index("\n## Examples\n")
    end = markdown.find("\n## ", start + 1)
    end = end if end != -1 else len(markdown)
    found = []
    for m in FENCE.finditer(markdown, start, end):
        heading = markdown.rfind("\n### ", start, m.start())
        kind = re.match(r"\n### `([a-z_]+)`", markdown[heading:])
        assert heading != -1 and kind, f"an example without a ### `event_type` heading above it: {m.group(1)[:60]}"
        (event,) = json_values(m.group(1))
        found.append((markdown.count("\n", 0, m.start()) + 2, kind.group(1), event))
    return found


MARKDOWN = DOC.read_text()
ALL = [(line, value) for line, body in blocks(MARKDOWN) for value in json_values(body)]


def test_the_page_has_json_examples():
    assert len(ALL) >= len(BY_TYPE)


@pytest.mark.parametrize("line,value", ALL, ids=[f"line{line}-{v.get('type') or v.get('form')}" for line, v in ALL])
def test_every_json_example_validates(line, value):
    if "type" in value:
        event = EVENT_ADAPTER.validate_python(value)
        assert type(event) is BY_TYPE[value["type"]]
    elif "form" in value:
        DOSING_ADAPTER.validate_python(value)
    else:
        pytest.fail(f"docs/event-format.md line {line}: a JSON example that is neither an event nor a dosing form")


def test_every_event_type_has_an_example_in_the_examples_section():
    types = [kind for _, kind, _ in section_examples(MARKDOWN)]
    assert set(BY_TYPE) - set(types) == set(), "event types without an example"


def test_each_example_is_the_type_its_heading_names():
    for line, kind, event in section_examples(MARKDOWN):
        assert event["type"] == kind, f"docs/event-format.md line {line}"


def test_every_dosing_form_has_an_example():
    forms = {v["form"] for _, v in ALL if "form" in v}
    assert forms == {"scheduled", "as_needed", "infusion", "pca"}


def test_examples_are_one_consistent_story(tmp_path):
    """Recorded in page order into an empty store, the examples pass every chart check."""
    examples = section_examples(MARKDOWN)
    events = [event for _, _, event in examples]
    assert {e["patient_id"] for e in events} == {"ref-001"}
    with EventStore(str(tmp_path / "doc.db")) as store:
        recorder = Recorder(store, "doc.test", clock=lambda: datetime.fromisoformat("2008-03-01T00:00:00+00:00"))
        # problems name the line of the page where the example's JSON starts
        summary = recorder.record([(line, event) for line, _, event in examples], source="docs/event-format.md")
        assert summary.added == len(events)
        stored = [r.data for r in store.stream("ref-001")]
    for given, kept in zip(events, stored):  # stored as written (40 == 40.0)
        assert {k: kept[k] for k in given} == given
