"""What several benchmarks share: the generated hospital file and fresh database paths."""
from __future__ import annotations

from pathlib import Path

import generate

OUT = Path(__file__).resolve().parent / "out"


def hospital_file(events: int) -> Path:
    """The seeded synthetic hospital of `events` events, generated once into bench/out/."""
    path = OUT / f"hospital-{events // 1000}k.jsonl"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        generate.write_jsonl(generate.hospital(events=events), path)
    return path


def fresh(db: Path) -> Path:
    """A database path with no file (nor WAL or shared-memory file) left from an earlier run."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return db
