"""The store against a real PostgreSQL: migrations, status, connection errors, secrets."""

from __future__ import annotations

import socket

import psycopg
import pytest
from pydantic import SecretStr

from kwx.config import Settings
from kwx.store import migrate
from kwx.store.engine import StoreError, connect, redact_url
from kwx.store.status import KWX_SCHEMAS, table_row_counts

Conn = psycopg.Connection[tuple[object, ...]]

SEED_TABLES = {
    "kalshi.series",
    "kalshi.events",
    "kalshi.markets",
    "md.candles_1m",
    "md.trades",
    "md.top_of_book",
    "md.orderbook_snapshot",
    "md.orderbook_delta",
    "wx.location",
    "wx.obs",
    "wx.forecast",
    "wx.forecast_daily",
    "wx.settlement",
    "wx.mc_params",
    "wx.product",
    "pmf.minute",
    "model.runs",
    "model.calibration",
    "model.fusion_config",
    "exec.orders",
    "exec.fills",
    "exec.positions",
    "exec.decisions",
    "backtest.runs",
    "meta.import_log",
    "meta.bad_input",
    "meta.backfill_state",
}


def test_migrations_reach_head(settings: Settings) -> None:
    head = migrate.head_revision()
    assert head is not None
    assert migrate.current_revision(settings) == head


def test_every_seed_table_exists_and_is_empty(conn: Conn) -> None:
    counts = table_row_counts(conn)
    assert set(counts) >= SEED_TABLES
    assert {name.split(".")[0] for name in counts} <= set(KWX_SCHEMAS)
    assert all(count == 0 for count in counts.values())


def test_downgrade_then_upgrade_round_trips(settings: Settings) -> None:
    command_cfg = migrate.alembic_config(settings)
    from alembic import command

    command.downgrade(command_cfg, "base")
    assert migrate.current_revision(settings) is None
    migrate.upgrade(settings)
    assert migrate.current_revision(settings) == migrate.head_revision()


def test_counts_follow_writes(conn: Conn) -> None:
    conn.execute(
        "INSERT INTO wx.settlement (city, climate_date, source, tmax_first, tmax_final) "
        "VALUES ('chicago', '2024-07-01', 'cli', 88, 88)"
    )
    conn.commit()
    assert table_row_counts(conn)["wx.settlement"] == 1


def test_redact_url_hides_the_password() -> None:
    url = "postgresql://kwx:s3cr3t-pw@db.example:5432/kwx"
    redacted = redact_url(url)
    assert "s3cr3t-pw" not in redacted
    assert redacted == "postgresql://kwx:***@db.example:5432/kwx"
    assert redact_url("postgresql://kwx@db/kwx") == "postgresql://kwx@db/kwx"


def test_unreachable_server_is_a_clear_store_error() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(
        kwx_database_url=SecretStr(
            f"postgresql://kwx:hunter2@127.0.0.1:{port}/kwx?connect_timeout=2"
        )
    )
    with pytest.raises(StoreError, match="cannot connect") as info, connect(settings):
        pass
    assert "hunter2" not in str(info.value)


def test_secrets_are_masked_everywhere() -> None:
    settings = Settings(
        vc_api_key=SecretStr("vc-key-123456"),
        kalshi_api_key_id=SecretStr("kid-abcdef"),
        kwx_database_url=SecretStr("postgresql://u:dbpass@h/db"),
    )
    shown = " ".join([repr(settings), str(settings), str(settings.describe())])
    for secret in ("vc-key-123456", "kid-abcdef", "dbpass"):
        assert secret not in shown
    assert settings.describe()["vc_api_key"] == "**********"
    assert settings.vc_api_key is not None
    assert settings.vc_api_key.get_secret_value() == "vc-key-123456"


def test_blank_secret_in_env_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_API_KEY", "  ")
    assert Settings().vc_api_key is None
