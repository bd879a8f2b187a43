"""The store against a real PostgreSQL: migrations, status, connection errors, secrets."""

from __future__ import annotations

import socket

import psycopg
import pytest
from pydantic import SecretStr

from kwx.config import Settings, default_data_dir, get_settings
from kwx.store import migrate
from kwx.store.engine import (
    ServerInfo,
    StoreError,
    connect,
    database_url,
    redact_url,
    server_info,
    sqlalchemy_url,
)
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


def test_every_seed_schema_and_table_exists_and_is_empty(conn: Conn) -> None:
    schemas = {
        str(r[0])
        for r in conn.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
    }
    assert schemas >= set(KWX_SCHEMAS)
    counts = table_row_counts(conn)
    assert set(counts) >= SEED_TABLES
    assert {name.split(".")[0] for name in counts} <= set(KWX_SCHEMAS)
    # Later migrations may add (and fill) reference tables; the seed's data tables start empty.
    assert {name: counts[name] for name in SEED_TABLES} == dict.fromkeys(SEED_TABLES, 0)


def test_money_columns_are_exact_numerics(conn: Conn) -> None:
    rows = conn.execute(
        "SELECT table_schema || '.' || table_name || '.' || column_name, data_type, "
        "numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE (table_schema, table_name, column_name) IN "
        "(('md', 'trades', 'yes_price'), ('md', 'trades', 'count_fp'), "
        "('md', 'candles_1m', 'vwap'), ('exec', 'fills', 'fee')) ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("exec.fills.fee", "numeric", 12, 4),
        ("md.candles_1m.vwap", "numeric", 10, 8),
        ("md.trades.count_fp", "numeric", 14, 2),
        ("md.trades.yes_price", "numeric", 8, 6),
    ]


def test_candle_grid_function_is_installed(conn: Conn) -> None:
    row = conn.execute(
        "SELECT count(*) FROM md.candles_1m_grid('KXHIGHCHI-24DEC01-B40.5', "
        "'2024-12-01T15:00:00Z', '2024-12-01T15:09:00Z')"
    ).fetchone()
    assert row == (10,)


def test_connect_sets_utc_and_async_commit(conn: Conn, settings: Settings) -> None:
    # The session settings are committed, so the caller starts on an idle connection.
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
    # Durable by default (the ledger); asynchronous commit only for redoable bulk work.
    assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    with connect(settings, bulk=True) as bulk:
        assert bulk.execute("SHOW synchronous_commit").fetchone() == ("off",)


def test_downgrade_then_upgrade_round_trips(settings: Settings) -> None:
    command_cfg = migrate.alembic_config(settings)
    from alembic import command

    with connect(settings) as conn:
        fresh = table_row_counts(conn)
    command.downgrade(command_cfg, "base")
    assert migrate.current_revision(settings) is None
    with connect(settings) as conn:
        left = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ANY(%s)",
            (list(KWX_SCHEMAS),),
        ).fetchone()
    assert left == (0,)
    migrate.upgrade(settings)
    assert migrate.current_revision(settings) == migrate.head_revision()
    with connect(settings) as conn:
        assert table_row_counts(conn) == fresh


def test_counts_follow_writes(conn: Conn) -> None:
    before = table_row_counts(conn)
    conn.execute(
        "INSERT INTO wx.settlement (city, climate_date, source, tmax_first, tmax_final) "
        "VALUES ('chicago', '2024-07-01', 'cli', 88, 88), ('chicago', '2024-07-02', 'cli', 90, 90)"
    )
    conn.commit()
    counts = table_row_counts(conn)
    changed = {name: n for name, n in counts.items() if n != before[name]}
    assert changed == {"wx.settlement": 2}
    # The counts are read in a transaction of their own and leave the connection idle.
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_redact_url_hides_the_password() -> None:
    url = "postgresql://kwx:s3cr3t-pw@db.example:5432/kwx"
    redacted = redact_url(url)
    assert "s3cr3t-pw" not in redacted
    assert redacted == "postgresql://kwx:***@db.example:5432/kwx"
    assert redact_url("postgresql://kwx@db/kwx") == "postgresql://kwx@db/kwx"
    socket_url = "postgresql://kwx:pw@/kwx?host=/tmp/kwxpg1"
    assert redact_url(socket_url) == "postgresql://kwx:***@/kwx?host=/tmp/kwxpg1"


def test_redact_url_leaves_a_url_without_credentials_alone() -> None:
    assert redact_url("postgresql:///kwx?host=/tmp/s") == "postgresql:///kwx?host=/tmp/s"


def test_server_info_and_urls_never_carry_the_password() -> None:
    settings = Settings(
        kwx_database_url=SecretStr("postgresql+psycopg://kwx:pw-9f8e7d@db.example:5433/trading")
    )
    assert database_url(settings) == "postgresql://kwx:pw-9f8e7d@db.example:5433/trading"
    assert sqlalchemy_url(settings) == (
        "postgresql+psycopg://kwx:pw-9f8e7d@db.example:5433/trading"
    )
    info = server_info(settings)
    assert info == ServerInfo(
        embedded=False, location="postgresql://kwx:***@db.example:5433/trading", database="trading"
    )


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
    shown = " ".join(
        [repr(settings), str(settings), str(settings.describe()), settings.model_dump_json()]
    )
    for secret in ("vc-key-123456", "kid-abcdef", "dbpass"):
        assert secret not in shown
    assert settings.describe()["kwx_database_url"] == "**********"
    assert settings.describe()["kalshi_private_key_path"] == "(unset)"
    assert settings.describe()["vc_api_key"] == "**********"
    assert settings.vc_api_key is not None
    assert settings.vc_api_key.get_secret_value() == "vc-key-123456"


def test_blank_secret_in_env_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_API_KEY", "  ")
    assert Settings().vc_api_key is None


def test_secret_from_env_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VC_API_KEY", "env-vc-key-314159")
    settings = Settings()
    assert settings.vc_api_key is not None
    assert settings.vc_api_key.get_secret_value() == "env-vc-key-314159"
    assert "env-vc-key-314159" not in repr(settings)
    assert "env-vc-key-314159" not in str(settings.describe())


def test_tests_never_see_the_users_data_dir() -> None:
    assert get_settings().kwx_data_dir != default_data_dir()
    assert get_settings().kwx_database_url is None
