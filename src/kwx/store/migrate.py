"""Run Alembic migrations programmatically, so users never need an alembic.ini."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from kwx.config import Settings
from kwx.store.engine import sqlalchemy_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_lock key of "migrating this database" ('kwx' 'migr' as two int32s would do as
# well; one bigint is simplest). Advisory locks are per database, so two stores on one server
# never wait for each other.
MIGRATION_LOCK: Final = 0x6B77_785F_6D69_6772  # b"kwx_migr"


def alembic_config(settings: Settings | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(settings).replace("%", "%%"))
    return cfg


@contextlib.contextmanager
def migration_lock(settings: Settings | None = None) -> Iterator[None]:
    """Hold the database's migration lock (a session advisory lock on a connection of its own).

    Why: Alembic takes no lock, so two commands started together on a fresh store (two
    imports, an import and `kwx run`) both saw "no schema", both ran 0001, and the slower
    one died with an IntegrityError. Under the lock the second waits, then finds the schema
    at head and does nothing. The lock goes with the session, so a killed migrator never
    leaves it held.
    """
    from kwx.store.engine import connect

    with connect(settings, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    """Migrate under :func:`migration_lock`, then mirror the city registry into meta.city
    (the views read it)."""
    with migration_lock(settings):
        command.upgrade(alembic_config(settings), revision)
        if revision == "head":
            from kwx.store.engine import connect
            from kwx.store.reference import sync_cities

            with connect(settings) as conn:
                sync_cities(conn)


def head_revision() -> str | None:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head()


def current_revision(settings: Settings | None = None) -> str | None:
    engine = create_engine(sqlalchemy_url(settings), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
