"""Scratch files of a rebuild, in the temporary folder.

A rebuild works in a scratch database (projections.runner) and collects the alerts another
process computes through a file (projections.alerts.bulk); both are removed when the
rebuild ends, fails or is interrupted. A process killed with SIGKILL (or by the OOM killer,
or a power cut) gets no chance to: its files stay, and on a large store the scratch
database holds the fields of every dose (about 85 MB per million events). So each name
carries the pid of the process that made it, and every new scratch file first removes
those of processes that no longer run. A pid reused by another process only delays the
removal. The name also carries the host name: a temporary folder shared between machines
or containers (other pid namespaces) holds files whose pids mean nothing here, and those
are left alone.
"""
from __future__ import annotations

import os
import re
import socket
import tempfile
from pathlib import Path

# mar-KIND-HOST-PID-RANDOM.SUFFIX (tempfile's random part has no "-")
NAME = re.compile(r"mar-(?:rebuild|alerts)-(.+)-(\d+)-[a-z0-9_]+\.(?:db|jsonl)")


def scratch_file(kind: str, suffix: str) -> str:
    """A new empty file mar-KIND-HOST-PID-....SUFFIX in the temporary folder (KIND: rebuild or alerts)."""
    sweep()
    fd, path = tempfile.mkstemp(prefix=f"mar-{kind}-{_host()}-{os.getpid()}-", suffix=suffix)
    os.close(fd)
    return path


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def sweep(folder: str | None = None) -> list[str]:
    """Remove the scratch files of processes that no longer run; returns their paths."""
    if os.name != "posix":  # os.kill(pid, 0) is no liveness test elsewhere (on Windows it signals)
        return []
    removed, host = [], _host()
    for path in Path(folder or tempfile.gettempdir()).glob("mar-*-*-*-*"):
        match = NAME.fullmatch(path.name)
        if match and match.group(1) == host and not _running(int(match.group(2))):
            try:
                path.unlink()
            except OSError:  # gone meanwhile, or not ours to remove
                continue
            removed.append(str(path))
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it runs, as another user
        return True
    return True
