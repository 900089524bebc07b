"""File import and single-event recording: the application layer over Recorder."""
from __future__ import annotations

import orjson

from .errors import InvalidEvents, Problem
from .recording import Recorder, Summary
from .store import EventStore


def read_jsonl(path: str, progress=None):
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if progress is not None:
                progress.update(len(raw))
            if raw.strip():
                yield number, raw


def import_file(store: EventStore, user: str | None, path: str, fmt: str = "jsonl",
                progress=None) -> Summary:
    recorder = Recorder(store, user)
    if fmt == "fhir":
        from .fhir_in import record_bundle

        # the store lets a dose name an order imported earlier; problems name FHIR paths
        return record_bundle(recorder, path)
    if progress is not None:
        with progress as bar:
            lines = list(read_jsonl(path, bar))
    else:
        lines = list(read_jsonl(path))
    _not_one_document(lines, path)
    return recorder.record(lines, source=path)


def _not_one_document(lines: list[tuple[int, bytes]], path: str) -> None:
    """A JSON document spread over many lines (a FHIR Bundle, a pretty-printed list) is one
    problem, said once, rather than a problem per line."""
    if len(lines) < 2:
        return
    try:
        orjson.loads(lines[0][1])
        return  # the first line is JSON: line by line it is
    except orjson.JSONDecodeError:
        pass
    try:
        whole = orjson.loads(b"".join(raw for _, raw in lines))
    except orjson.JSONDecodeError:
        return  # not one document either: each line says what is wrong with it
    if isinstance(whole, dict) and whole.get("resourceType") == "Bundle":
        what, hint = "a FHIR Bundle", "import it with --format fhir"
    else:
        kind = "object" if isinstance(whole, dict) else "document"
        what, hint = f"one JSON {kind}", "write one mar event per line (JSON Lines)"
    raise InvalidEvents([Problem(lines[0][0], "(file)", f"{len(lines)} lines",
                                 f"the file is {what} over {len(lines)} lines, not one event per line: {hint}")],
                        path)


def record_one(store: EventStore, user: str | None, payload: str) -> Summary:
    return Recorder(store, user).record([(None, payload)])
