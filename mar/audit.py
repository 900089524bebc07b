"""Tamper evidence: walk every stored event in stream order and check its chain link.

Each row of `stored_events` has an index row in `mar_index` whose `chain` is
`chain_hash(previous link of the same patient stream, the event row, the index row)`
(mar.store; decision 0003). `verify` recomputes every link from the raw rows, without
decoding events, and reports each break with its position: the notification id (the
row's place in the store), the patient stream and the version. Rows are read in large
pages in one read transaction, so the walk sees one consistent state of the store
(SQLite or PostgreSQL: mar.raw_rows).
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict, dataclass, field
from typing import Iterable

from . import security
from .errors import StoreError
from .raw_rows import missing_triggers, stream_order
from .store import EventStore, chain_hash

MAX_LISTED = 1000  # breaks kept in the report; all are counted

# kinds of break
CHANGED = "changed"            # the link does not match the row: content, version or order changed
MISSING = "missing"            # a version of the stream is absent: event and index rows deleted
EVENT_DELETED = "event-deleted"  # the index row is there, its event row is not
UNINDEXED = "unindexed"        # an event row without index row: inserted, or its index row deleted
OUT_OF_ORDER = "out-of-order"  # notification ids do not rise with the version: rows reordered
ANCHOR = "anchor"              # an externally anchored head is gone or different
MODE = "mode"                  # the store's mode record is missing or disagrees with the key
UNPROTECTED = "unprotected"    # append-only triggers dropped: rows could be changed at will


class VerifyRefused(StoreError):
    """The store cannot be verified as asked (keyed store without its key, wrong key)."""

    exit_code = 2


@dataclass(frozen=True)
class Break:
    kind: str
    detail: str
    stream: str | None = None
    version: int | None = None
    position: int | None = None
    patient_id: str | None = None

    def __str__(self) -> str:
        where = []
        if self.position is not None:
            where.append(f"position {self.position}")
        if self.patient_id is not None:
            where.append(f"patient {self.patient_id}")
        if self.stream is not None:
            where.append(f"stream {self.stream}")
        if self.version is not None:
            where.append(f"version {self.version}")
        return f"{self.kind}: {', '.join(where) or 'store'}: {self.detail}"


@dataclass(frozen=True)
class Head:
    """The last link of a stream: what an auditor anchors outside the store."""

    stream: str
    version: int
    chain: str
    position: int | None
    patient_id: str | None = None


@dataclass
class Report:
    events: int = 0
    streams: int = 0
    chain: str = security.PLAIN
    breaks: list[Break] = field(default_factory=list)
    breaks_total: int = 0
    heads: list[Head] = field(default_factory=list)
    anchors_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.breaks_total == 0

    @property
    def store_head(self) -> str:
        """One digest over every stream head, in stream order: a single value to anchor."""
        h = hashlib.sha256()
        for head in sorted(self.heads, key=lambda x: x.stream):
            h.update(f"{head.stream} {head.version} {head.chain}\n".encode())
        return "sha256:" + h.hexdigest()

    def add(self, brk: Break) -> None:
        self.breaks_total += 1
        if len(self.breaks) < MAX_LISTED:
            self.breaks.append(brk)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "events": self.events,
            "streams": self.streams,
            "chain": self.chain,
            "breaks_total": self.breaks_total,
            "breaks": [asdict(b) for b in self.breaks],
            "anchors_checked": self.anchors_checked,
            "store_head": self.store_head,
            "heads": [asdict(h) for h in sorted(self.heads, key=lambda x: x.stream)],
        }


def verify(store: EventStore, anchors: Iterable[dict] = ()) -> Report:
    """Check every link of every stream; `anchors` are heads from an earlier report."""
    key = store.recorder.chain_key
    report = Report(chain=security.KEYED if key else security.PLAIN)
    _check_mode(store, key, report)
    missing = missing_triggers(store)
    if missing:
        report.add(Break(UNPROTECTED, f"append-only triggers missing: {', '.join(missing)} "
                                      "(dropped, so that rows could be changed or deleted)"))
    walk = _Walk(store, key, report, {a["stream"]: (int(a["version"]), a["chain"]) for a in anchors})
    with stream_order(store) as (orphans, pages):
        walk.orphans = orphans
        for rows in pages:
            walk.rows(rows)
        walk.finish()
    return report


def _check_mode(store: EventStore, key: bytes | None, report: Report) -> None:
    mode = store.mode
    if not mode.recorded:
        report.add(Break(MODE, "the store has no mode record (mar_meta): it was removed, "
                               "or the store predates it"))
        return
    if mode.chain == security.KEYED and not key:
        raise VerifyRefused("this store was created in keyed mode: set MAR_HMAC_KEY to verify it")
    if key and mode.hmac_check and not hmac.compare_digest(mode.hmac_check, security.hmac_check(key)):
        raise VerifyRefused("MAR_HMAC_KEY is not this store's key: its key check does not match")
    if key and mode.chain != security.KEYED:
        report.add(Break(MODE, f"MAR_HMAC_KEY is set but the store records chain mode {mode.chain!r}: "
                               "a keyed store's mode record was rewritten, or this is not a keyed store"))


class _Walk:
    """The state of the walk through one stream after another."""

    def __init__(self, store: EventStore, key: bytes | None, report: Report, anchors: dict):
        self.store = store
        self.key = key
        self.report = report
        self.anchors = anchors
        self.orphans: dict[tuple[str, int], tuple[str, str, str]] = {}
        self.oid: str | None = None
        self.expected = 1
        self.prev: str | None = ""
        self.last_position = 0
        self.last_state = b""
        self.anchor: tuple[int, str] | None = None

    def rows(self, rows: list[tuple]) -> None:
        key = self.key
        report = self.report
        for position, oid, version, topic, state, event_id, digest, chain in rows:
            if oid != self.oid:
                self._start(oid)
            if version != self.expected:
                self._gap(oid, version, position, state)
            prev = self.prev
            if chain is None:
                self._break(UNINDEXED, "an event row without its index row: inserted, "
                            "or its index row was deleted", version, position, state)
            elif prev is not None and chain != chain_hash(prev, oid, version, topic, state, key,
                                                          event_id, digest):
                self._break(CHANGED, "the link does not match: this row (content, version or "
                            "index) was changed, or the row before it was replaced",
                            version, position, state)
            if position < self.last_position:
                self._break(OUT_OF_ORDER, f"stored before version {version - 1} "
                            f"(position {self.last_position}): rows were reordered",
                            version, position, state)
            if self.anchor is not None and self.anchor[0] == version:
                self._check_anchor(version, chain, position, state)
            self.prev = chain
            self.expected = version + 1
            self.last_position = position
            self.last_state = state
            report.events += 1

    def _start(self, oid: str) -> None:
        self._end_stream()
        self.oid = oid
        self.expected = 1
        self.prev = ""
        self.last_position = 0
        self.last_state = b""
        self.anchor = self.anchors.pop(oid, None)
        self.report.streams += 1

    def _gap(self, oid: str, version: int, position: int, state: bytes) -> None:
        if version < self.expected:  # below 1: rows are in version order, each version once
            self._break(CHANGED, f"version {version} cannot exist: stream versions start at 1",
                        version, position, state)
            return
        between = f" (between positions {self.last_position or 'start'} and {position})"
        for missing in range(self.expected, version):
            orphan = self.orphans.pop((oid, missing), None)
            if orphan is not None:
                self._break(EVENT_DELETED, "the event row was deleted; its index row remains" + between,
                            missing, None, state)
                self.prev = orphan[2]
            else:
                self._break(MISSING, "this version is missing: its event and index rows were deleted"
                            + between, missing, None, state)
                self.prev = None  # the next link cannot be checked without the missing one
            if self.anchor is not None and self.anchor[0] == missing:
                self._check_anchor(missing, orphan[2] if orphan else None, None, state)

    def _end_stream(self) -> None:
        if self.oid is None:
            return
        # index rows after the last event row: the stream's tail events were deleted
        version = self.expected
        while (orphan := self.orphans.pop((self.oid, version), None)) is not None:
            self._break(EVENT_DELETED, "the event row was deleted; its index row remains",
                        version, None, self.last_state)
            version += 1
        if self.anchor is not None and self.anchor[0] >= self.expected:
            self._break(ANCHOR, f"the anchored head (version {self.anchor[0]}) is gone: the stream "
                        f"now ends at version {self.expected - 1}; events were deleted from its end",
                        self.anchor[0], None, self.last_state)
        self.report.heads.append(Head(self.oid, self.expected - 1, self.prev or "", self.last_position,
                                      self._patient(self.last_state)))

    def _check_anchor(self, version: int, chain: str | None, position: int | None, state: bytes) -> None:
        self.report.anchors_checked += 1
        if chain != self.anchor[1]:
            self._break(ANCHOR, "the link differs from the anchored head: the stream was rewritten "
                        "up to this version", version, position, state)

    def finish(self) -> None:
        self._end_stream()
        for (oid, version), _ in sorted(self.orphans.items()):
            self._break(EVENT_DELETED, "the event row was deleted; its index row remains",
                        version, None, b"", oid)
        for oid, (version, _) in sorted(self.anchors.items()):
            self._break(ANCHOR, f"the anchored stream (head version {version}) is gone from the store",
                        version, None, b"", oid)

    def _break(self, kind: str, detail: str, version: int, position: int | None, state: bytes,
               oid: str | None = None) -> None:
        self.report.add(Break(kind, detail, oid or self.oid, version, position, self._patient(state)))

    def _patient(self, state: bytes) -> str | None:
        """The patient of a broken row, when the row can still be read (not encrypted away)."""
        if not state:
            return None
        try:
            return self.store.mapper.decode(state).get("patient_id")
        except (StoreError, AttributeError):  # damaged or encrypted: the stream id still names it
            return None
