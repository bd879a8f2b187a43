"""Find or start the PostgreSQL server kwx uses, and hand out connections to it.

With KWX_DATABASE_URL unset kwx runs an embedded PostgreSQL (the `pgserver` package) in the
user data directory. The server is left running when a process exits so the next `kwx`
command reuses it at once instead of paying a start-up each time; `kwx db stop` stops it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from kwx.config import Settings, get_settings

EMBEDDED_DB_NAME = "kwx"
MIN_SERVER_VERSION = 140000


class StoreError(RuntimeError):
    """The store cannot be reached or is not usable (wrong version, not migrated)."""


@dataclass(frozen=True)
class ServerInfo:
    """Where the data lives, for `kwx db status`; never carries a password."""

    embedded: bool
    location: str
    database: str


def _with_database(url: str, dbname: str) -> str:
    """The same server, another database (string surgery: urlunsplit drops an empty host)."""
    head, sep, query = url.partition("?")
    scheme, _, rest = head.partition("://")
    netloc = rest.split("/", 1)[0]
    return f"{scheme}://{netloc}/{dbname}{sep}{query}"


def redact_url(url: str) -> str:
    """The URL without its password, safe to print (a URL without one comes back unchanged)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    creds, host = parts.netloc.rsplit("@", 1)
    if ":" not in creds:
        return url
    user = creds.split(":", 1)[0]
    return url.replace(f"//{parts.netloc}", f"//{user}:***@{host}", 1)


@functools.cache
def _embedded_server_url(pgdata: Path) -> str:
    """Start (or attach to) the embedded server and make sure the kwx database exists."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pgserver

        server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    admin_url: str = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DB_NAME,)
        ).fetchone()
        if exists is None:
            # Two commands started together on a fresh data directory both see no database.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'CREATE DATABASE "{EMBEDDED_DB_NAME}"')
    return _with_database(admin_url, EMBEDDED_DB_NAME)


def stop_embedded_server(settings: Settings | None = None) -> bool:
    """Stop the embedded server if it runs; True if there was one to stop.

    Raises StoreError with pg_ctl's own reason when it refuses or fails: `kwx db stop` used
    to print "stopped" whatever pg_ctl said, and as root pg_ctl always refuses ("cannot be
    run as root") while the server, which pgserver runs as the data directory's owner, kept
    running. As root we therefore run pg_ctl as that owner, as pgserver itself does.
    """
    settings = settings or get_settings()
    pgdata = settings.pgdata_dir
    if not (pgdata / "postmaster.pid").exists():
        return False
    import pgserver

    pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    result = _run_as_owner([str(pg_ctl), "-D", str(pgdata), "-m", "fast", "stop"], pgdata)
    _embedded_server_url.cache_clear()
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        reason = said[-1] if said else f"exit code {result.returncode}"
        raise StoreError(f"pg_ctl did not stop the server in {pgdata}: {reason}")
    return True


def _run_as_owner(args: list[str], pgdata: Path) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool as the owner of ``pgdata`` when we are root (the tools refuse
    root); as ourselves otherwise."""
    owner = pgdata.stat()
    if hasattr(os, "geteuid") and os.geteuid() == 0 and owner.st_uid != 0:
        return subprocess.run(
            args,
            check=False,
            capture_output=True,
            text=True,
            user=owner.st_uid,
            group=owner.st_gid,
            extra_groups=[],
            cwd=pgdata,
        )
    return subprocess.run(args, check=False, capture_output=True, text=True, cwd=pgdata)


def database_url(settings: Settings | None = None) -> str:
    """The libpq URL of the kwx database (contains the password if configured: never log it)."""
    settings = settings or get_settings()
    if settings.kwx_database_url is not None:
        url = settings.kwx_database_url.get_secret_value()
        if url.startswith("postgresql+psycopg://"):
            url = "postgresql://" + url.removeprefix("postgresql+psycopg://")
        return url
    return _embedded_server_url(settings.pgdata_dir)


def server_info(settings: Settings | None = None) -> ServerInfo:
    settings = settings or get_settings()
    url = database_url(settings)
    embedded = settings.kwx_database_url is None
    return ServerInfo(
        embedded=embedded,
        location=str(settings.pgdata_dir) if embedded else redact_url(url),
        database=urlsplit(url).path.lstrip("/"),
    )


def sqlalchemy_url(settings: Settings | None = None) -> str:
    """The same database as a SQLAlchemy URL (psycopg 3 driver), for Alembic."""
    url = database_url(settings)
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@contextlib.contextmanager
def connect(
    settings: Settings | None = None, *, autocommit: bool = False, bulk: bool = False
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A psycopg connection with the session settings kwx relies on.

    `bulk` turns off synchronous commit for work that can be redone (imports, backfills,
    recomputation): a crash may lose the last few commits, never corrupt anything, and the
    resumable job fetches them again. Everything else (the ledger, the stream recorder)
    keeps fully durable commits.
    """
    try:
        conn = psycopg.connect(database_url(settings), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
    with conn:
        if conn.info.server_version < MIN_SERVER_VERSION:
            raise StoreError(
                f"PostgreSQL {conn.info.server_version} is too old; kwx needs 14 or newer"
            )
        if bulk:
            conn.execute("SET synchronous_commit = off")
        conn.execute("SET TIME ZONE 'UTC'")
        if not autocommit:
            conn.commit()
        yield conn
