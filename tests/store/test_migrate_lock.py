"""Migrations under an advisory lock; `kwx db stop` stops the server or says why not."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.store import migrate
from kwx.store.engine import StoreError, stop_embedded_server
from tests.conftest import with_db

MIGRATE = (
    "import sys\n"
    "from pydantic import SecretStr\n"
    "from kwx.config import Settings\n"
    "from kwx.store import migrate\n"
    "migrate.upgrade(Settings(kwx_database_url=SecretStr(sys.argv[1]), kwx_data_dir=sys.argv[2]))\n"
)


def test_three_processes_migrating_a_fresh_store_at_once_all_succeed(
    pg_admin_url: str, tmp_path: Path
) -> None:
    name = f"fresh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_db(pg_admin_url, name)
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE, url, str(tmp_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        results = [(p.wait(timeout=180), p.stderr.read() if p.stderr else "") for p in procs]
        for code, stderr in results:
            assert code == 0, stderr[-2000:]
        settings = Settings(kwx_database_url=SecretStr(url), kwx_data_dir=tmp_path)
        assert migrate.current_revision(settings) == migrate.head_revision()
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_lock_is_held_while_migrating(settings: Settings) -> None:
    """While one session holds the lock, another cannot take it (the upgrade would wait)."""
    with (
        migrate.migration_lock(settings),
        psycopg.connect(
            settings.kwx_database_url.get_secret_value()  # type: ignore[union-attr]
        ) as other,
    ):
        row = other.execute("SELECT pg_try_advisory_lock(%s)", (migrate.MIGRATION_LOCK,)).fetchone()
        assert row is not None and row[0] is False
    with psycopg.connect(settings.kwx_database_url.get_secret_value()) as other:  # type: ignore[union-attr]
        row = other.execute("SELECT pg_try_advisory_lock(%s)", (migrate.MIGRATION_LOCK,)).fetchone()
        assert row is not None and row[0] is True


def _server_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_db_stop_really_stops_the_embedded_server() -> None:
    """As root pg_ctl refuses to run; the stop must run it as the data directory's owner."""
    data_dir = Path(tempfile.mkdtemp(prefix="kwxstop", dir="/tmp"))
    settings = Settings(kwx_data_dir=data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        pgserver.get_server(settings.pgdata_dir, cleanup_mode=None)  # type: ignore[attr-defined]
    try:
        assert _server_running(settings.pgdata_dir)
        assert stop_embedded_server(settings) is True
        assert not _server_running(settings.pgdata_dir)
        assert stop_embedded_server(settings) is False
    finally:
        if _server_running(settings.pgdata_dir):
            stop_embedded_server(settings)
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)


def test_db_stop_reports_a_refusal_with_a_non_zero_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_ctl refusing (here: a pid file in a directory that is no cluster) is an error, not
    "stopped"."""
    settings = Settings(kwx_data_dir=tmp_path)
    settings.pgdata_dir.mkdir(parents=True)
    (settings.pgdata_dir / "postmaster.pid").write_text("999999\n")
    with pytest.raises(StoreError, match="pg_ctl did not stop the server"):
        stop_embedded_server(settings)
    monkeypatch.setenv("KWX_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "stop"], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "pg_ctl did not stop the server" in result.output
    assert "stopped\n" not in result.output
