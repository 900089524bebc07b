"""Scratch files of a killed rebuild are removed by the next one (projections.scratch)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from projections import scratch

pytestmark = pytest.mark.skipif(os.name != "posix", reason="liveness by os.kill(pid, 0) is POSIX only")


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def test_the_files_of_processes_that_no_longer_run_are_removed(tmp_path):
    gone, me, parent, host = dead_pid(), os.getpid(), os.getppid(), scratch._host()
    names = [f"mar-rebuild-{host}-{gone}-a1.db", f"mar-alerts-{host}-{gone}-b2.jsonl",  # of a killed rebuild
             f"mar-rebuild-{host}-{me}-c3.db", f"mar-alerts-{host}-{parent}-d4.jsonl",  # of running processes
             f"mar-rebuild-other-host-{gone}-e5.db",  # of another machine (its pids mean nothing here)
             f"mar-rebuild-{host}-x12-f6.db", f"mar-export-{host}-{gone}-g7.db", "other.db"]  # not scratch files
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = scratch.sweep(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == sorted(names[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


def test_a_new_scratch_file_carries_the_pid_and_sweeps_first(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    left = tmp_path / f"mar-rebuild-{scratch._host()}-{dead_pid()}-old.db"
    left.write_bytes(b"x" * 1000)
    path = scratch.scratch_file("rebuild", ".db")
    assert os.path.basename(path).startswith(f"mar-rebuild-{scratch._host()}-{os.getpid()}-") and path.endswith(".db")
    assert scratch.NAME.fullmatch(os.path.basename(path))
    assert os.path.getsize(path) == 0 and not left.exists()
