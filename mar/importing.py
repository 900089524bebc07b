"""File import and single-event recording: the application layer over Recorder."""
from __future__ import annotations

from typing import Callable

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
    return recorder.record(lines, source=path)


def record_one(store: EventStore, user: str | None, payload: str) -> Summary:
    return Recorder(store, user).record([(None, payload)])
