"""User errors are one line naming the setting or input, never a traceback (issue 15).

Run through the real entry point (``python -m kwx.cli``, i.e. ``kwx.cli.main``), since that is
where errors escaping a command are turned into messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError

from kwx.commands.errors import explain, settings_error
from kwx.config import Settings, TradeMode
from tests.conftest import with_db


def _kwx(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kwx.cli", *args],
        env={**os.environ, "COLUMNS": "80", **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "╭" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def bare_url(pg_admin_url: str) -> Iterator[str]:
    """A database that exists but was never migrated."""
    name = f"bare_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield with_db(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_trade_mode_is_read_in_any_case() -> None:
    assert Settings(trade_mode="LIVE").trade_mode == TradeMode.LIVE  # type: ignore[arg-type]
    assert Settings(trade_mode=" Paper ").trade_mode == TradeMode.PAPER  # type: ignore[arg-type]


def test_a_bad_setting_is_one_line_naming_it_and_its_values(tmp_path: Path) -> None:
    result = _kwx(["config"], {"TRADE_MODE": "yolo", "KWX_DATA_DIR": str(tmp_path)}, tmp_path)
    _one_line_error(result, "TRADE_MODE", "'yolo'", "paper, live")


def test_a_secret_setting_is_never_echoed() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(kalshi_api_key_id=["sekrit-id-123"], mc_paths=5)  # type: ignore[arg-type]
    message = settings_error(info.value)
    assert "KALSHI_API_KEY_ID" in message and "MC_PATHS" in message
    assert "sekrit-id-123" not in message


def test_an_unmigrated_store_says_what_to_run(bare_url: str, tmp_path: Path) -> None:
    """weather diag reads kalshi.markets without migrating first: UndefinedTable before."""
    result = _kwx(
        [
            "weather",
            "diag",
            "skill",
            "--city",
            "chicago",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
        ],
        {"KWX_DATABASE_URL": bare_url, "KWX_DATA_DIR": str(tmp_path)},
        tmp_path,
    )
    _one_line_error(result, "kwx db upgrade", "kalshi.markets")


def test_bench_live_on_an_empty_store_says_what_to_run(bare_url: str, tmp_path: Path) -> None:
    result = _kwx(
        ["bench", "live", "--runs", "1"],
        {"KWX_DATABASE_URL": bare_url, "KWX_DATA_DIR": str(tmp_path)},
        tmp_path,
    )
    _one_line_error(result, "KXHIGHCHI", "2024-12-05", "import")


def test_bench_ingest_without_the_data_is_one_line(tmp_path: Path) -> None:
    result = _kwx(
        ["bench", "ingest", "--runs", "1", "--data-dir", str(tmp_path / "nowhere")],
        {"KWX_DATA_DIR": str(tmp_path)},
        tmp_path,
    )
    _one_line_error(result, "nowhere")


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://kwx:hunter2secret@127.0.0.1:1/kwx?connect_timeout=2"
    result = _kwx(
        ["db", "status"], {"KWX_DATABASE_URL": url, "KWX_DATA_DIR": str(tmp_path)}, tmp_path
    )
    _one_line_error(result, "PostgreSQL")
    assert "hunter2secret" not in result.stderr + result.stdout


def test_bugs_are_not_disguised() -> None:
    assert explain(ZeroDivisionError("x")) is None
    assert explain(KeyError("ticker")) is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sim", "serve", "--city", "chicago", "--date", "bad"], "--date"),
        (["bench", "live", "--date", "2024-02-30"], "--date"),
        (
            [
                "weather",
                "backfill",
                "--city",
                "chicago",
                "--from",
                "2024-01-02",
                "--to",
                "2024-01-01",
            ],
            "before --from",
        ),
        (["run", "--city", "nowhere", "--max-steps", "1"], "unknown city 'nowhere'"),
    ],
)
def test_bad_options_are_named(args: list[str], needle: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kwx.cli import app

    result = CliRunner().invoke(app, args, env={"COLUMNS": "80", "KWX_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert needle in " ".join(result.output.split())
