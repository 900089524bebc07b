"""Following the store: keep the read models up to date as events arrive, until stopped.

`follow(store)` catches up once, then waits for new events and catches up again at each
wake-up, with the runner's catch-up (projections/runner.py), so exactly-once holds as for
`mar project`: each batch and its positions are one transaction of the read-model database.

How it wakes up:
- PostgreSQL: the eventsourcing library's subscription (`recorder.subscribe`: LISTEN on the
  events table's channel; every append sends NOTIFY in its transaction, so the notification
  arrives at commit). The store's last position is also read every RECHECK seconds: the
  library starts listening a moment after its first read, and an event committed in between
  would otherwise wait for the next one.
- SQLite (the library has no subscriptions for it): the store's last position is polled
  every `interval` seconds.

A store that cannot be read any more (a server restart, a network cut) is tried again after
1 s, then 2, 4, ... up to 30 s, until it answers; the follower then catches up from the read
models' position (each batch was one transaction, so they are consistent).

SIGINT and SIGTERM stop it after the current transaction (a long backlog is applied in
transactions of the runner's batch size); a second signal ends it at once, the open
transaction rolling back.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from mar.errors import StoreError

from .runner import Runner

if TYPE_CHECKING:
    from mar.store import EventStore

INTERVAL = 0.2  # seconds between two looks at a store that cannot notify (SQLite)
RECHECK = 2.0  # seconds between two looks at a store that notifies (PostgreSQL)
SLICE = 0.05  # longest sleep without looking at the stop flag
SIGNALS = (signal.SIGINT, signal.SIGTERM)
RETRY_FIRST = 1.0  # seconds before the first try to reach a store that went away
RETRY_MAX = 30.0  # longest wait between two tries


@dataclass(frozen=True)
class Applied:
    """One catch-up that applied events."""

    events: int
    position: int  # the read models' position afterwards (the lowest of the projections)
    seconds: float


@dataclass(frozen=True)
class Following:
    """Where the follower is, once it has caught up with what was stored when it started."""

    path: str  # the read-model database
    position: int
    waking: str  # "notifications" or "polling"
    interval: float | None  # seconds between polls (None with notifications)


@dataclass(frozen=True)
class Summary:
    path: str
    events: int  # applied while following, the first catch-up included
    catch_ups: int  # catch-ups that applied events
    position: int
    seconds: float
    stopped_by: str | None  # the signal's name, or None when stopped by `Follower.stop`


class Follower:
    """Catch-up, then wait and catch up again, until `stop()` (safe from a signal handler)."""

    def __init__(self, store: EventStore, path: str | None = None, interval: float = INTERVAL,
                 recheck: float = RECHECK, runner: Runner | None = None):
        if interval <= 0:
            raise ValueError(f"interval={interval!r}: must be more than 0 seconds")
        self.store = store
        self.interval = interval
        self.recheck = recheck
        self.runner = runner or Runner(store, path)
        self._stopped = False
        self.stopped_by: str | None = None

    def __enter__(self) -> "Follower":
        return self

    def __exit__(self, *exc) -> None:
        self.runner.close()

    def stop(self, reason: str | None = None) -> None:
        # Only a flag: a signal handler must not take a lock the interrupted code may hold.
        self.stopped_by = self.stopped_by or reason
        self._stopped = True

    @property
    def stopping(self) -> bool:
        return self._stopped

    def position(self) -> int:
        return min(self.runner.positions().values(), default=0)

    def run(self, on_catch_up: Callable[[Applied], None] | None = None,
            on_start: Callable[[Following], None] | None = None, rebuild: bool = False,
            on_lost: Callable[[StoreError, float], None] | None = None) -> Summary:
        """Catch up (after a rebuild, if asked), then follow until stopped. When the store
        cannot be read any more, `on_lost(error, seconds)` is told, and the follower tries
        again after those seconds (doubling up to RETRY_MAX) until the store answers."""
        started = time.perf_counter()
        events = catch_ups = 0

        def report(step: Callable[[], Applied | None]) -> None:
            nonlocal events, catch_ups
            with _store_errors():
                applied = step()
            if applied is not None:
                events += applied.events
                catch_ups += 1
                if on_catch_up:
                    on_catch_up(applied)

        report(self.rebuild if rebuild else self.catch_up)
        delay, first = RETRY_FIRST, True
        while not self.stopping:
            try:
                with _store_errors():
                    waker = _waker(self)
                with waker:
                    if not first:  # what was stored while the store was out of reach
                        report(self.catch_up)
                    delay = RETRY_FIRST
                    if first and on_start and not self.stopping:
                        on_start(Following(self.runner.path, self.position(), waker.name, waker.interval))
                    first = False
                    while not self.stopping:
                        target = waker.wait(self.position())
                        if target is not None:
                            report(lambda: self.catch_up(target))
            except StoreError as exc:
                # A server restart or a network cut: the read models are consistent (each
                # batch is one transaction), so wait and take up again from their position.
                if on_lost:
                    on_lost(exc, delay)
                if not _sleep(self, delay):
                    break
                delay = min(delay * 2, RETRY_MAX)
        return Summary(self.runner.path, events, catch_ups, self.position(), time.perf_counter() - started,
                       self.stopped_by)

    def rebuild(self) -> Applied | None:
        t0 = time.perf_counter()
        count = self.runner.rebuild()
        return Applied(count, self.position(), time.perf_counter() - t0) if count else None

    def catch_up(self, target: int | None = None) -> Applied | None:
        """Apply the events up to `target` (default: the last stored), one runner batch per
        transaction, looking at the stop flag between transactions."""
        t0 = time.perf_counter()
        runner = self.runner
        top = self.store.max_position() if target is None else target
        done = 0
        while not self.stopping:
            positions = runner.positions()
            low = min(positions.values(), default=top)
            if low >= top:
                break
            # A projection at 0 is rebuilt in bulk, all of it in one transaction.
            upto = top if 0 in positions.values() else min(top, low + runner.batch_size)
            count = runner.catch_up(upto=upto)
            if count == 0 and upto < top:
                # No event in (low, upto]: on PostgreSQL a rolled-back write leaves a gap of
                # ids; the runner finds the next event itself.
                count = runner.catch_up(upto=top)
            if count == 0:
                break
            done += count
        if done == 0:
            return None
        return Applied(done, self.position(), time.perf_counter() - t0)


def follow(store: EventStore, path: str | None = None, interval: float = INTERVAL, rebuild: bool = False,
           on_catch_up: Callable[[Applied], None] | None = None,
           on_start: Callable[[Following], None] | None = None, signals=SIGNALS,
           on_lost: Callable[[StoreError, float], None] | None = None) -> Summary:
    """Keep the read models of `store` up to date until SIGINT or SIGTERM (see the module
    docstring); `rebuild` first drops them and projects every event again."""
    with Follower(store, path, interval) as follower, _stopping_on(signals, follower):
        return follower.run(on_catch_up, on_start, rebuild, on_lost)


class _stopping_on:
    """Signals stop the follower; the first one puts the previous handlers back, so that a
    second one acts as it would have (Ctrl-C raises KeyboardInterrupt, SIGTERM ends)."""

    def __init__(self, signals, follower: Follower):
        self.signals = tuple(signals) if threading.current_thread() is threading.main_thread() else ()
        self.follower = follower
        self.previous: dict = {}

    def _handle(self, signum, frame) -> None:
        self.follower.stop(signal.Signals(signum).name)
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def __enter__(self):
        for signum in self.signals:
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()


# --- waking up ---------------------------------------------------------------------------------


def _waker(follower: Follower):
    """The library's subscription when the store's recorder has one, else polling."""
    try:
        subscription = follower.store.recorder.subscribe(gt=follower.position())
    except NotImplementedError:  # the library's SQLite recorder
        return _Polling(follower)
    return _Notified(follower, subscription)


class _Polling:
    name = "polling"

    def __init__(self, follower: Follower):
        self.follower = follower
        self.interval: float | None = follower.interval

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def wait(self, after: int) -> int | None:
        """The store's last position once it is past `after`; None when stopped."""
        while _sleep(self.follower, self.follower.interval):
            with _store_errors():
                top = self.follower.store.max_position()
            if top > after:
                return top
        return None


class _Notified:
    """A thread drains the library's subscription and remembers the newest position."""

    name = "notifications"
    interval = None

    def __init__(self, follower: Follower, subscription):
        self.follower = follower
        self.subscription = subscription
        self.newest = 0
        self.error: BaseException | None = None
        self.notified = threading.Event()
        self.thread = threading.Thread(target=self._drain, name="mar-follow", daemon=True)

    def __enter__(self):
        self.thread.start()  # the thread enters the subscription, and leaves it (joining the library's threads)
        return self

    def __exit__(self, *exc) -> None:
        self.subscription.stop()
        self.thread.join()

    def _drain(self) -> None:
        try:
            with self.subscription:
                for notification in self.subscription:
                    self.newest = notification.id
                    self.notified.set()
        except BaseException as exc:  # re-raised by wait(), in the follower's thread
            self.error = exc
        finally:
            self.notified.set()

    def wait(self, after: int) -> int | None:
        """The newest position notified (or read, every `recheck` s) once it is past `after`."""
        follower = self.follower
        last_look = time.monotonic()
        while not follower.stopping:
            if self.newest > after:
                return self.newest
            self.notified.wait(SLICE)
            self.notified.clear()
            if self.error is not None:
                raise StoreError(f"the store's notifications stopped: {self.error}") from self.error
            if self.newest <= after and time.monotonic() - last_look >= follower.recheck:
                last_look = time.monotonic()
                with _store_errors():
                    top = follower.store.max_position()
                if top > after:
                    return top
        return None


def _sleep(follower: Follower, seconds: float) -> bool:
    """Sleep in short slices (a signal only sets a flag); False when stopped meanwhile."""
    end = time.monotonic() + seconds
    while not follower.stopping:
        left = end - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(SLICE, left))
    return False


@contextlib.contextmanager
def _store_errors():
    """The library's errors of a store that went away (server restart, network) as a
    StoreError: the follower waits and tries again (Follower.run)."""
    from eventsourcing.persistence import PersistenceError

    try:
        yield
    except PersistenceError as exc:
        raise StoreError(f"cannot read the store: {exc}") from exc
