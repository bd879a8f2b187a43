"""The `kwx` command line, run in-process against a real test database."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.store import migrate
from kwx.store.engine import _embedded_server_url, connect
from kwx.store.status import table_row_counts

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # keep Rich from wrapping table rows
TRADES_HEADER = "trade_id,ticker,count,created_time,yes_price,no_price,taker_side\n"


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The CLI's settings come from the environment: point KWX_DATABASE_URL at a test DB."""
    assert settings.kwx_database_url is not None
    monkeypatch.setenv("KWX_DATABASE_URL", settings.kwx_database_url.get_secret_value())
    get_settings.cache_clear()
    _embedded_server_url.cache_clear()
    yield settings
    get_settings.cache_clear()


def _status() -> dict[str, object]:
    result = runner.invoke(app, ["db", "status", "--json"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    status: dict[str, object] = json.loads(lines[0])
    return status


def _tables() -> dict[str, int]:
    tables = _status()["tables"]
    assert isinstance(tables, dict)
    return {str(k): int(v) for k, v in tables.items()}


def test_cities_lists_every_series() -> None:
    result = runner.invoke(app, ["cities"], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(rows) == 24
    series = {m.group(0) for r in rows if (m := re.search(r"\bKXHIGH[A-Z]+\b", r))}
    assert len(series) == 24
    chicago = next(r for r in rows if "KXHIGHCHI" in r)
    assert "KMDW" in chicago and "HIGHCHI" in chicago and "UTC-6" in chicago


def test_db_upgrade_and_status_json(env: Settings) -> None:
    result = runner.invoke(app, ["db", "upgrade"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert f"is at revision {migrate.head_revision()}" in _flat(result.output)
    status = _status()
    assert status["embedded"] is False
    assert status["revision"] == migrate.head_revision()
    assert str(status["database"]).startswith("t_")
    tables = _tables()
    with connect(env) as conn:
        assert tables == table_row_counts(conn)
    assert {tables[name] for name in ("md.trades", "kalshi.markets", "wx.obs")} == {0}


@pytest.mark.usefixtures("env")
def test_db_status_table_for_people() -> None:
    result = runner.invoke(app, ["db", "status"], env=WIDE)
    assert result.exit_code == 0, result.output
    output = _flat(result.output)
    assert "(external)" in output
    assert f"revision: {migrate.head_revision()}" in output
    assert "md.trades │ 0" in output


def test_db_status_of_an_unreachable_server_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(
        "KWX_DATABASE_URL", f"postgresql://kwx:topsecret@127.0.0.1:{port}/kwx?connect_timeout=2"
    )
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["db", "status", "--json"], env=WIDE)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL" in _flat(result.output)
    assert "topsecret" not in result.output


@pytest.mark.usefixtures("env")
def test_import_reports_failures_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_text(
        TRADES_HEADER + "00000000-0000-4000-8000-000000000001,KXHIGHCHI-24DEC01-B40.5,1,"
        "2024-12-01T15:00:00Z,40,60,yes\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(
        TRADES_HEADER + "00000000-0000-4000-8000-000000000002,KXHIGHCHI-24DEC01-B40.5,1,"
        "yesterday,40,60,yes\n"
    )
    result = runner.invoke(app, ["import", "--from-files", str(tmp_path)], env=WIDE)
    # The summary is printed and the exit code says a file failed (issue 15: it was 0).
    assert result.exit_code == 1, result.output
    output = _flat(result.output)
    assert "│ imported │ 1 │ 1 │ 1 │" in output
    assert "│ failed │ 1 │ 0 │ 0 │" in output
    assert f"{bad}, row 1, field 'created_time': not a valid timestamp" in output
    assert "1 file(s) failed" in output
    assert "markets inferred from tickers: 1; candles built from trades: 1" in output
    tables = _tables()
    assert (tables["md.trades"], tables["meta.bad_input"], tables["md.candles_1m"]) == (1, 1, 1)
    # A second run finds the good file unchanged; the bad one fails again.
    rerun = runner.invoke(app, ["import", "--from-files", str(tmp_path)], env=WIDE)
    assert rerun.exit_code == 1
    again = _flat(rerun.output)
    assert "│ unchanged │ 1 │ 0 │ 0 │" in again
    assert "│ failed │ 1 │ 0 │ 0 │" in again
    # Forcing re-imports it, and changes no count but the bad-input log.
    forced = runner.invoke(app, ["import", "--from-files", str(tmp_path), "--force"], env=WIDE)
    assert forced.exit_code == 1, forced.output
    assert "│ imported │ 1 │ 1 │ 0 │" in _flat(forced.output)
    after = _tables()
    assert after.pop("meta.bad_input") == 3
    tables.pop("meta.bad_input")
    assert after == tables


@pytest.mark.usefixtures("env")
def test_import_of_clean_files_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_text(
        TRADES_HEADER + "00000000-0000-4000-8000-000000000001,KXHIGHCHI-24DEC01-B40.5,1,"
        "2024-12-01T15:00:00Z,40,60,yes\n"
    )
    result = runner.invoke(app, ["import", "--from-files", str(tmp_path)], env=WIDE)
    assert result.exit_code == 0, result.output


def test_import_of_missing_directory_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", "--from-files", str(tmp_path / "nope")], env=WIDE)
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope'} is not a directory" in _flat(result.output)


@pytest.mark.usefixtures("env")
def test_config_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_API_KEY", "vc-very-secret-key")
    monkeypatch.setenv("KALSHI_API_KEY_ID", "kalshi-key-id-777")
    get_settings.cache_clear()
    result = runner.invoke(app, ["config"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "vc-very-secret-key" not in result.output
    assert "kalshi-key-id-777" not in result.output
    vc_row = next(line for line in result.output.splitlines() if "vc_api_key" in line)
    assert "**********" in vc_row
    base = next(line for line in result.output.splitlines() if "vc_base_url" in line)
    assert "https://weather.visualcrossing.com" in base
