"""Export the stored events as JSON Lines, and read such lines back on import.

An export line is the event as the store keeps it — the source's fields, `recorded_at` and
`recorded_by` (the charting time and user), the store's `event_id`, `stored_at`,
`stored_by` and `v` — plus its place and link: `version` (in the patient stream),
`digest` (of its content) and `chain` (its tamper-evidence link).

`mar import` recognises such lines by the store's fields and treats them so that an
export imported into an empty store gives the same events (docs/audit.md):
- `event_id` stays the event's id (corrections name their targets by it) and is its
  idempotency key: importing the same export twice adds nothing.
- `recorded_at` and `recorded_by` are kept exactly as exported: the charting time and
  user do not change when the record moves.
- `stored_at`, `stored_by`, `version` and `chain` belong to the store that wrote them:
  the new store records its own append time, writing user, version and link.
- `v` is the version of the event type the line was written in: older versions are
  upcast, newer ones are refused.
- `digest` is kept when it is the digest of the line's content (with or without the
  `recorded_at`/`recorded_by` the first store filled in), so re-importing an export into
  the store it came from finds every event already stored.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import IO, Iterator

import orjson

from .errors import Problem, UnknownPatient
from .event_types import VERSIONS, upcast
from .raw_rows import log_order
from .store import EventStore, stream_id
DEFAULTED = ("recorded_at", "recorded_by")


def export_events(store: EventStore, patient_id: str | None = None) -> Iterator[dict]:
    """Every stored event (or one patient's) in store order, as export lines."""
    found = False
    for position, data, version, digest, chain in _rows(store, patient_id):
        found = True
        yield {**data, "version": version, "digest": digest, "chain": chain}
    if patient_id is not None and not found:
        raise UnknownPatient(patient_id)


def _rows(store: EventStore, patient_id: str | None):
    stream = None if patient_id is None else stream_id(patient_id).hex
    decode = store.mapper.decode
    for position, version, state, digest, chain in log_order(store, stream):
        yield position, upcast(decode(state)), version, digest, chain


def write_jsonl(lines: Iterator[dict], out: IO[bytes]) -> int:
    count = 0
    for line in lines:
        out.write(orjson.dumps(line) + b"\n")
        count += 1
    return count


@contextmanager
def private_output(path: str) -> Iterator[IO[bytes]]:
    """An export holds the whole record in clear: owner-only, like the store."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        yield fh


# --- import side ----------------------------------------------------------------------


def parse_exported(raw: dict, line: int | None):
    """An export line as an import candidate that keeps the event's identity."""
    from .recording import STORE_FIELDS, Candidate, digest_of, parse_line

    raw = dict(raw)
    stored = {k: raw.pop(k) for k in sorted(STORE_FIELDS) if k in raw}
    if "event_id" not in stored:
        name = next(iter(stored))
        return None, [Problem(line, name, stored[name], "a field the store adds: only lines written "
                              "by `mar export` (which carry event_id) may have it")]
    raw, problems = _upcast(raw, stored.get("v"), line)
    if problems:
        return None, problems
    cand, problems = parse_line(raw, line)
    if cand is None:
        return None, problems
    data = dict(cand.data)
    for name in DEFAULTED:
        if isinstance(raw.get(name), str):
            data[name] = raw[name]
    event_id = stored.get("event_id", cand.event_id)
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
        return None, [Problem(line, "event_id", event_id, "must be a non-empty string of at most 200 characters")]
    if data.get("idempotency_key", event_id) != event_id:
        return None, [Problem(line, "event_id", event_id,
                              f"differs from the line's idempotency_key {data['idempotency_key']!r}")]
    return Candidate(line, data, event_id, _digest(data, stored.get("digest"), digest_of)), []


def _upcast(raw: dict, v, line: int | None) -> tuple[dict, list[Problem]]:
    current = VERSIONS.get(raw.get("type"))
    if v is None or current is None:
        return raw, []
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= current:
        return raw, [Problem(line, "v", v, f"unknown version of {raw['type']}: this mar reads "
                             f"versions 1 to {current} (written by a newer mar?)")]
    data = upcast({**raw, "v": v})
    data.pop("v")
    return data, []


def _digest(data: dict, claimed, digest_of) -> str:
    """The exported digest when it is this content's (the first store may have filled in
    recorded_at/recorded_by); otherwise the digest of the content as it is now."""
    if isinstance(claimed, str):
        for drop in ((), ("recorded_at",), ("recorded_by",), DEFAULTED):
            if digest_of({k: v for k, v in data.items() if k not in drop}) == claimed:
                return claimed
    return digest_of(data)
