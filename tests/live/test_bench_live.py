"""`kwx bench live` on the test day: figures as one JSON line last, sane and complete."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.store.engine import _embedded_server_url
from tests.conftest import needs_data

pytestmark = needs_data()
runner = CliRunner()


def test_bench_live_prints_latency_figures_last(day_settings: Settings) -> None:
    assert day_settings.kwx_database_url is not None
    url = day_settings.kwx_database_url.get_secret_value()
    get_settings.cache_clear()
    _embedded_server_url.cache_clear()
    try:
        result = runner.invoke(
            app,
            ["bench", "live", "--runs", "2", "--max-ticks", "120"],
            env={"KWX_DATABASE_URL": url, "COLUMNS": "200"},
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["bench"] == "live" and figures["brackets"] == 6
    assert figures["ticks"] == 120 and figures["runs"] == 2
    assert set(figures["tick_kinds"]) == {"minute", "trade", "touch"}
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert len(figures["per_run"]) == 2
    assert figures["target_p99_ms"] == 20.0
