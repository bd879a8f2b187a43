"""The `kwx` command line, run in-process against a real test database."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, get_settings

runner = CliRunner()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    assert settings.kwx_database_url is not None
    monkeypatch.setenv("KWX_DATABASE_URL", settings.kwx_database_url.get_secret_value())
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cities_lists_every_series() -> None:
    result = runner.invoke(app, ["cities"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "KXHIGHCHI" in result.output and "KMDW" in result.output
    assert "UTC-6" in result.output
    assert len(set(re.findall(r"\bKXHIGHT?[A-Z]+\b", result.output))) == 24


@pytest.mark.usefixtures("env")
def test_db_upgrade_and_status_json() -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["db", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output.strip().splitlines()[-1])
    assert status["embedded"] is False
    assert status["tables"]["md.trades"] == 0
    assert status["revision"] is not None


@pytest.mark.usefixtures("env")
def test_import_reports_failures_and_goes_on(tmp_path: Path) -> None:
    header = "trade_id,ticker,count,created_time,yes_price,no_price,taker_side\n"
    (tmp_path / "good.csv").write_text(
        header + "00000000-0000-4000-8000-000000000001,KXHIGHCHI-24DEC01-B40.5,1,"
        "2024-12-01T15:00:00Z,40,60,yes\n"
    )
    (tmp_path / "bad.csv").write_text(
        header + "00000000-0000-4000-8000-000000000002,KXHIGHCHI-24DEC01-B40.5,1,"
        "yesterday,40,60,yes\n"
    )
    result = runner.invoke(app, ["import", "--from-files", str(tmp_path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # Rich wraps long lines
    assert "row 1, field 'created_time'" in output
    assert "1 file(s) failed" in output
    status = json.loads(runner.invoke(app, ["db", "status", "--json"]).output.splitlines()[-1])
    assert status["tables"]["md.trades"] == 1
    assert status["tables"]["meta.bad_input"] == 1


def test_import_of_missing_directory_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", "--from-files", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "is not a directory" in " ".join(result.output.split())


@pytest.mark.usefixtures("env")
def test_config_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_API_KEY", "vc-very-secret-key")
    get_settings.cache_clear()
    result = runner.invoke(app, ["config"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "vc-very-secret-key" not in result.output
    assert "**********" in result.output
