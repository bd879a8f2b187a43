"""A store for the dashboard tests: one real Chicago day, a real backtest, a paper run's rows.

KXHIGHCHI 2024-12-05 is imported from ../shared/data (markets, trades, the ERA5 proxy and
Visual Crossing forecasts of the month before, settlements), weather-modelled by the real
commands (pmf.minute p_wx, hazards, Tmax quantiles), and backtested by
:func:`kwx.backtest.runner.run_backtest` (backtest.runs, exec.orders/fills/decisions). The
paper run is that backtest's ledger filed again under an ``exec.live_runs`` paper row — the
rows a paper run writes, in its shapes — with its positions netted from its fills, one
evaluation row carrying the risk block, and one resting quote. Built once per session.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from kwx.backtest.runner import BacktestOutcome, run_backtest
from kwx.config import Settings, get_settings
from kwx.store.engine import _embedded_server_url, connect
from tests.conftest import DATA, TEMPLATE_DB, with_db
from tests.live.conftest import DAY, FIT_FROM, FIT_TO, _cut, _ok, trading_config

NOW = dt.datetime(2024, 12, 5, 18, 0, tzinfo=dt.UTC)  # noon CST on the day


@dataclass(frozen=True)
class Store:
    settings: Settings
    backtest: BacktestOutcome
    paper_run: int


def _copy_as_paper(conn: psycopg.Connection[tuple[object, ...]], bt: BacktestOutcome) -> int:
    row = conn.execute(
        "INSERT INTO exec.live_runs (mode, cities, exchange, params, started_at, status) "
        "VALUES ('paper', '{chicago}', 'paper', %s, %s, 'running') RETURNING run_id",
        (json.dumps({"fill_model": bt.fill_model}), dt.datetime(2024, 12, 5, 6, tzinfo=dt.UTC)),
    ).fetchone()
    assert row is not None
    run_id = row[0]
    assert isinstance(run_id, int)
    for table, key in (("exec.fills", "fill_id"),):
        cols = [
            str(c[0])
            for c in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'exec' AND table_name = %s ORDER BY ordinal_position",
                (table.split(".")[1],),
            ).fetchall()
        ]
        exprs = [
            f"{key} || '-paper'"
            if c == key
            else "'paper'"
            if c == "mode"
            else "%s"
            if c == "run_id"
            else c
            for c in cols
        ]
        conn.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM {table} "
            "WHERE mode = 'backtest' AND run_id = %s",
            (run_id, bt.run_id),
        )
    conn.execute(
        "INSERT INTO exec.decisions (mode, run_id, ts, ticker, payload) "
        "SELECT 'paper', %s, ts, ticker, payload FROM exec.decisions "
        "WHERE mode = 'backtest' AND run_id = %s ORDER BY decision_id",
        (run_id, bt.run_id),
    )
    conn.execute(
        """
        INSERT INTO exec.positions (mode, run_id, ticker, position_fp, cost, fees, updated_at)
        SELECT 'paper', %s, ticker,
               sum(CASE WHEN (side = 'yes') = (action = 'buy') THEN count_fp ELSE -count_fp END),
               sum(CASE WHEN action = 'buy' THEN count_fp * price ELSE -count_fp * price END),
               sum(fee), max(ts)
        FROM exec.fills WHERE mode = 'paper' AND run_id = %s GROUP BY ticker
        """,
        (run_id, run_id),
    )
    ticker = bt.fills[0].ticker
    conn.execute(
        "INSERT INTO exec.orders (client_order_id, order_id, mode, run_id, ticker, "
        "event_ticker, side, action, kind, price, count_fp, filled_fp, status, created_at) "
        "VALUES (%s, %s, 'paper', %s, %s, %s, 'yes', 'buy', 'limit', 0.21, 7, 2, 'resting', %s)",
        (uuid.uuid4(), "paper-quote-1", run_id, ticker, bt.fills[0].event_ticker, NOW),
    )
    risk = {
        "killed": False,
        "kill_reason": None,
        "no_new_orders": False,
        "time_stop": False,
        "exposure": "12.50",
        "day_pnl_city": {"chicago": "-1.25"},
        "day_pnl_global": "-1.25",
    }
    conn.execute(
        "INSERT INTO exec.decisions (mode, run_id, ts, ticker, payload) "
        "VALUES ('paper', %s, %s, %s, %s)",
        (
            run_id,
            NOW - dt.timedelta(minutes=1),
            bt.fills[0].event_ticker,
            json.dumps({"kind": "evaluation", "city": "chicago", "risk": risk, "intents": []}),
        ),
    )
    conn.commit()
    return run_id


@pytest.fixture(scope="session")
def store(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    name = f"dash_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    url = with_db(pg_admin_url, name)
    tmp = tmp_path_factory.mktemp("dashday")
    settings = Settings(kwx_database_url=SecretStr(url), kwx_data_dir=tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWX_DATABASE_URL", url)
        mp.chdir(tmp)
        get_settings.cache_clear()
        _embedded_server_url.cache_clear()
        _cut(tmp / "data")
        _ok(["import", "--from-files", str(tmp / "data")])
        _ok(["weather", "fit-params", "--city", "chicago", "--from", str(FIT_FROM),
             "--to", str(FIT_TO)])  # fmt: skip
        _ok(["weather", "backfill", "--city", "chicago", "--from", str(DAY), "--to", str(DAY),
             "--paths", "500"])  # fmt: skip
        with connect(settings) as conn:
            bt = run_backtest(
                conn,
                settings,
                "chicago",
                DAY,
                DAY,
                fill_model="maker-b",
                config=trading_config(),
                report_path=Path(tmp / "bt.html"),
            )
            assert bt.fills, "the backtest of the test day made no fill"
            paper = _copy_as_paper(conn, bt)
    get_settings.cache_clear()
    yield Store(settings, bt, paper)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
