"""Shared fixtures. `store_url` is the one place that chooses the backend(s) under test."""
from __future__ import annotations

import os

import pytest

from mar.store import EventStore

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "mar.db")
    raise NotImplementedError(request.param)


@pytest.fixture
def store(store_url):
    with EventStore(store_url) as s:
        yield s


@pytest.fixture(autouse=True)
def _user(monkeypatch):
    monkeypatch.setenv("MAR_USER", "test.user")
    for name in ("MAR_DB", "MAR_READ_ONLY", "MAR_CIPHER_KEY", "MAR_HMAC_KEY", "MAR_CATALOG", "MAR_PROJECTIONS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def runner():
    from click.testing import CliRunner

    return CliRunner()


FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "seed_case.jsonl")
