"""Run Alembic migrations programmatically, so users never need an alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from kwx.config import Settings
from kwx.store.engine import sqlalchemy_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(settings).replace("%", "%%"))
    return cfg


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    """Migrate, then mirror the city registry into meta.city (the views read it)."""
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
