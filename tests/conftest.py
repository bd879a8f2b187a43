"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test.

Databases are cloned from a migrated template (CREATE DATABASE … TEMPLATE), which takes
tens of milliseconds, so every test gets an empty, fully migrated store of its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from kwx.config import Settings, get_settings

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TEMPLATE_DB = "kwx_template"

# Never let a test touch the user's real data directory, database or keys. Set before any test
# module reads settings; a blank value means "unset" (see Settings._blank_is_unset) and, unlike
# an absent variable, it also outranks whatever a developer's .env says.
_SESSION_DATA_DIR = Path(tempfile.mkdtemp(prefix="kwxdata"))
os.environ["KWX_DATA_DIR"] = str(_SESSION_DATA_DIR)
for _secret in ("KWX_DATABASE_URL", "VC_API_KEY", "KALSHI_API_KEY_ID"):
    os.environ[_secret] = ""
get_settings.cache_clear()


def needs_data() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def with_db(url: str, name: str) -> str:
    """The same server URL naming another database (the socket host stays in the query)."""
    head, _, query = url.partition("?")
    return head.rsplit("/", 1)[0] + "/" + name + (("?" + query) if query else "")


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_dir() -> Iterator[Path]:
    """The session's KWX_DATA_DIR; an embedded server something started there is stopped."""
    yield _SESSION_DATA_DIR
    from kwx.store.engine import _embedded_server_url, stop_embedded_server

    stop_embedded_server(Settings(kwx_data_dir=_SESSION_DATA_DIR))
    _embedded_server_url.cache_clear()
    get_settings.cache_clear()
    shutil.rmtree(_SESSION_DATA_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A throw-away embedded PostgreSQL server with a migrated template database."""
    from kwx.store import migrate

    # Under /tmp with a short name: the server's unix socket path must stay below 100 chars.
    pgdata = tempfile.mkdtemp(prefix="kwxpg", dir="/tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(pgdata, cleanup_mode="delete")  # type: ignore[attr-defined]
    admin: str = server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    migrate.upgrade(
        Settings(
            kwx_database_url=SecretStr(with_db(admin, TEMPLATE_DB)),
            kwx_data_dir=_SESSION_DATA_DIR,
        )
    )
    yield admin
    server.cleanup()


@pytest.fixture
def settings(pg_admin_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings pointing at a fresh, migrated database of this test's own."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    yield Settings(kwx_database_url=SecretStr(with_db(pg_admin_url, name)), kwx_data_dir=tmp_path)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def conn(settings: Settings) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    from kwx.store.engine import connect

    with connect(settings) as connection:
        yield connection
