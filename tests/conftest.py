"""Shared fixtures. `store_url` is the one place that chooses the backend(s) under test."""
from __future__ import annotations

import contextlib
import itertools
import os
from urllib.parse import urlsplit, urlunsplit

import pytest

from mar.store import EventStore

# An admin URL of a throwaway PostgreSQL server (.ci/run starts one); each test gets a
# fresh, empty database on it, dropped afterwards.
POSTGRES_ADMIN_URL = os.environ.get("MAR_TEST_POSTGRES", "")

BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.skipif(
        not POSTGRES_ADMIN_URL, reason="set MAR_TEST_POSTGRES=postgresql://user@host:port/db to test PostgreSQL")),
]


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path, monkeypatch) -> str:
    if request.param == "sqlite":
        yield str(tmp_path / "mar.db")
    elif request.param == "postgres":
        # Read models stay a SQLite file: where the SQLite store would put them by default.
        monkeypatch.setenv("MAR_PROJECTIONS", str(tmp_path / "mar.projections.db"))
        with _postgres_database(request.getfixturevalue("_postgres_admin")) as url:
            yield url
    else:
        raise NotImplementedError(request.param)


@pytest.fixture(scope="session")
def _postgres_admin():
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        yield conn


_databases = itertools.count()


@contextlib.contextmanager
def _postgres_database(admin):
    """A new empty database, dropped with its connections afterwards."""
    name = f"mar_test_{os.getpid()}_{next(_databases)}"
    # A file copy is the fast way when fsync is off (.ci/run); before 15 it is the only way.
    strategy = " STRATEGY FILE_COPY" if admin.info.server_version >= 150000 else ""
    admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0{strategy}')
    try:
        yield urlunsplit(urlsplit(POSTGRES_ADMIN_URL)._replace(path="/" + name, query=""))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
