"""The replay: no look-ahead, fill rules, clock speeds, weather as of the clock, the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from kwx.cli import app
from kwx.config import Settings, get_settings
from kwx.registry import default_registry
from kwx.sim.clock import SimClock, parse_speed
from kwx.sim.exchange import Exchange
from kwx.sim.faults import maintenance_windows
from kwx.sim.fills import fill_model
from kwx.sim.replay import ReplayBook, ReplayData, ReplayEvent
from kwx.sim.simulator import Simulator
from kwx.sources.iem import IemClient
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_models import OrderRequest
from kwx.sources.kalshi_ws import TradeMsg
from kwx.sources.nws import NwsClient
from kwx.sources.ratelimit import TokenBucket
from kwx.store.engine import _embedded_server_url, connect
from tests.sim.conftest import CITY, DAY, EVENT, KEY_ID, at, rest_client, until, ws_stream

D = Decimal
T0 = at("2024-12-05T15:00:00")


def _state(exchange: Exchange) -> dict[str, Any]:
    """Everything a client could read, minus the random order/fill ids."""

    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in r.items() if k not in ("order_id", "fill_id", "trade_id")}
            for r in rows
        ]

    return {
        "markets": exchange.market_wires(),
        "books": {t: exchange.orderbook(t) for t in exchange.data.markets},
        "balance": exchange.balance(),
        "positions": exchange.positions("all"),
        "orders": strip(exchange.orders()),
        "fills": strip(exchange.fills()),
    }


def test_changing_the_future_does_not_move_the_past(day: ReplayData) -> None:
    cut = at("2024-12-05T18:00:00")
    twin = day.with_future_changed(cut)
    assert len(twin.trades) < len(day.trades)  # the future really differs
    assert [m.result for m in twin.markets.values()] != [m.result for m in day.markets.values()]
    states = []
    for data in (day, twin):
        exchange = Exchange(data, SimClock(T0), fill_model("cross"))
        for n, ticker in enumerate(sorted(data.markets)[:3]):
            for body in (
                OrderRequest.buy_yes(ticker, D("0.99"), D(2), "immediate_or_cancel"),
                OrderRequest.buy_yes(ticker, D("0.03"), D(5)),
                OrderRequest.sell_yes(ticker, D("0.97"), D(5)),
            ):
                exchange.create({**body.to_json(), "client_order_id": f"o{n}-{body.price}"})
        exchange.advance_to(cut)
        states.append(_state(exchange))
        assert [t.wire() for t in data.trades_until(cut)] == [
            t.wire() for t in day.trades_until(cut)
        ]
        assert all(data.candles_until(t, cut) == day.candles_until(t, cut) for t in data.markets)
    assert states[0] == states[1]


def test_the_fill_model_rules() -> None:
    cross, optimistic = fill_model("cross"), fill_model("optimistic")
    # Taker: best levels first, within the limit, up to the count.
    offers = [(D("0.40"), D(3)), (D("0.41"), D(4)), (D("0.45"), D(9))]
    assert cross.taker_fills("bid", D("0.41"), D(5), offers) == [
        (D("0.40"), D(3)),
        (D("0.41"), D(2)),
    ]
    assert cross.taker_fills("bid", D("0.39"), D(5), offers) == []
    # Maker bid at 0.30 with 10 ahead: prints at our price by NO takers eat the queue first.
    at_price = cross.on_trade("bid", D("0.30"), D(10), D(4), D("0.30"), "no", D(12))
    assert (at_price.filled, at_price.queue_ahead, at_price.consumed) == (D(2), D(0), D(12))
    # ... a YES taker at our price is another buyer: nothing for us.
    assert cross.on_trade("bid", D("0.30"), D(10), D(4), D("0.30"), "yes", D(12)).filled == 0
    # ... a print through our price fills us whatever was queued.
    through = cross.on_trade("bid", D("0.30"), D(10), D(4), D("0.29"), "yes", D(3))
    assert (through.filled, through.queue_ahead) == (D(3), D(0))
    # The optimistic model never waits in the queue.
    assert optimistic.initial_queue(D(10)) == 0
    assert optimistic.on_trade("ask", D("0.70"), D(0), D(4), D("0.70"), "yes", D(9)).filled == 4
    with pytest.raises(ValueError, match="fill model"):
        fill_model("perfect")


def test_maintenance_windows_are_thursday_03_to_05_eastern() -> None:
    winter = maintenance_windows(at("2024-12-02T00:00:00"), at("2024-12-09T00:00:00"))
    assert [(a.astimezone(dt.UTC), b.astimezone(dt.UTC)) for a, b in winter] == [
        (at("2024-12-05T08:00:00"), at("2024-12-05T10:00:00"))
    ]
    summer = maintenance_windows(at("2024-07-08T00:00:00"), at("2024-07-15T00:00:00"))
    assert [a.astimezone(dt.UTC) for a, _ in summer] == [at("2024-07-11T07:00:00")]


def test_clock_speeds() -> None:
    assert [parse_speed(s) for s in ("1", "60x", "max", "manual")] == [1.0, 60.0, "max", "manual"]
    for bad in ("0", "fast", "-3"):
        with pytest.raises(ValueError, match="speed"):
            parse_speed(bad)
    wall = [100.0]
    clock = SimClock(T0, 600.0, wall=lambda: wall[0])
    wall[0] += 0.5
    assert clock.target() == T0 + dt.timedelta(minutes=5)
    assert clock.wall_seconds_until(T0 + dt.timedelta(minutes=10)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        clock.set(T0 - dt.timedelta(seconds=1))


def test_a_multiplier_moves_the_clock_with_wall_time(make_sim: Any) -> None:
    sim: Simulator = make_sim(T0, speed=600.0)
    before = sim.clock.now()
    asyncio.run(asyncio.sleep(0.5))
    moved = (sim.clock.now() - before).total_seconds()
    assert 200 < moved < 500  # 0.5 s of wall time is 300 s at 600x (loaded machines lag)


def test_max_speed_delivers_every_print_to_a_consuming_client(
    make_sim: Any, private_key: rsa.RSAPrivateKey, day: ReplayData
) -> None:
    start = at("2024-12-06T03:00:00")  # the last two hours before the close
    sim: Simulator = make_sim(start)
    tickers = sorted(day.markets)
    expected = [t.trade_id for t in day.trades if t.ts > start]
    assert expected

    async def scenario() -> None:
        async with ws_stream(sim, private_key, tickers) as stream:
            sim.clock.set_speed("max")
            await until(lambda: sim.finished.is_set(), "the end of the replay", 8.0)
            await until(lambda: len(stream.of(TradeMsg)) >= len(expected), "every print")
            assert [m.trade_id for m in stream.of(TradeMsg)] == expected

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_fills_reach_the_market_positions_channel(
    make_sim: Any, private_key: rsa.RSAPrivateKey
) -> None:
    sim: Simulator = make_sim(T0)
    rest = rest_client(sim, private_key)
    ticker = f"{EVENT}-B28.5"

    async def scenario() -> list[dict[str, Any]]:
        signer = KalshiSigner(KEY_ID, private_key)
        headers = signer.headers("GET", sim.ws_url)
        async with websockets.connect(sim.ws_url, additional_headers=headers) as ws:
            await ws.send(
                json.dumps(
                    {"id": 1, "cmd": "subscribe", "params": {"channels": ["market_positions"]}}
                )
            )
            assert json.loads(await ws.recv())["type"] == "subscribed"
            await asyncio.to_thread(
                rest.create_order,
                OrderRequest.buy_yes(ticker, D("0.99"), D(3), "immediate_or_cancel"),
            )
            return [json.loads(await asyncio.wait_for(ws.recv(), 5))]

    [frame] = asyncio.run(scenario())
    assert frame["type"] == "market_position" and frame["seq"] == 1
    assert (frame["msg"]["market_ticker"], frame["msg"]["position_fp"]) == (ticker, "3.00")


def test_weather_is_served_from_the_store_as_of_the_clock(
    day_settings: Settings, private_key: rsa.RSAPrivateKey
) -> None:
    from kwx.sim.simulator import SimConfig

    with connect(day_settings) as conn:
        sim = Simulator.from_store(
            conn, CITY, DAY, SimConfig(start=T0, public_key=private_key.public_key())
        )
    fast = TokenBucket(1000, 1000)  # the clients' politeness limits are for the real hosts
    with (
        sim,
        IemClient(sim.weather_url, bucket=fast) as iem,
        NwsClient(sim.weather_url, "kwx-test", bucket=fast) as nws,
    ):
        rows = iem.asos_1min(
            CITY.iem_station, T0 - dt.timedelta(hours=6), T0 + dt.timedelta(hours=6)
        )
        assert len(rows) == 7 and rows["ts"].max() == T0  # hourly ERA5 proxy, none after now
        observed = nws.station_observations(CITY.station_icao, T0 - dt.timedelta(hours=3))
        assert max(o.ts for o in observed) <= T0
        assert not [
            r
            for r in iem.cli_reports(CITY.cli_product, DAY, DAY + dt.timedelta(days=2))
            if r.climate_date == DAY
        ]
        sim.advance_to(at("2024-12-06T08:00:00"))  # after 01:30 CST, when the CLI is out
        [report] = [
            r
            for r in iem.cli_reports(CITY.cli_product, DAY, DAY + dt.timedelta(days=2))
            if r.climate_date == DAY
        ]
        with connect(day_settings) as conn:
            official = conn.execute(
                "SELECT tmax_final FROM wx.settlement WHERE city = %s AND climate_date = %s "
                "AND source = 'official'",
                [CITY.key, DAY],
            ).fetchone()
        assert official is not None and report.max_temp_f == official[0] and report.kind == "final"
        assert [
            r.max_temp_f for r in nws.cli_reports(CITY.cli_product[3:]) if r.climate_date == DAY
        ] == [official[0]]


def test_sim_serve_prints_the_urls_and_refuses_bad_input(
    day_settings: Settings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert day_settings.kwx_database_url is not None
    monkeypatch.setenv("KWX_DATABASE_URL", day_settings.kwx_database_url.get_secret_value())
    get_settings.cache_clear()
    _embedded_server_url.cache_clear()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "pub.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    runner = CliRunner()
    try:
        args = ["sim", "serve", "--city", "chicago", "--date", DAY.isoformat()]
        result = runner.invoke(
            app,
            [
                *args,
                "--speed",
                "1000",
                "--public-key",
                str(pem),
                "--faults",
                "gap,429",
                "--duration",
                "1",
            ],
            env={"COLUMNS": "250"},
        )
        assert result.exit_code == 0, result.output
        for name in (
            "KALSHI_REST_BASE_URL=http://127.0.0.1:",
            "KALSHI_WS_URL=ws://127.0.0.1:",
            "IEM_BASE_URL=",
            "NWS_BASE_URL=",
        ):
            assert name in result.output
        assert "assume 25 contracts at the touch" in result.output
        bad = runner.invoke(app, [*args, "--speed", "fast"])
        assert bad.exit_code == 1 and "speed" in bad.output
        missing = runner.invoke(app, ["sim", "serve", "--city", "chicago", "--date", "2024-12-25"])
        assert missing.exit_code == 1 and "no KXHIGHCHI markets" in missing.output
    finally:
        get_settings.cache_clear()


def test_books_from_quotes_and_full_depth() -> None:
    ts = at("2025-12-05T15:00:00")
    quoted = ReplayBook("KXHIGHNY-25DEC05-B40.5", "top_of_book", D(25))
    assert quoted.apply(ReplayEvent(ts, "quote", quoted.ticker, (D("0.41"), D("0.44"))))
    assert (quoted.bids(), quoted.asks()) == ([(D("0.41"), D(25))], [(D("0.44"), D(25))])
    # Kalshi's empty book (bid 0, ask 1) is no quote at all.
    quoted.apply(ReplayEvent(ts, "quote", quoted.ticker, (D(0), D(1))))
    assert quoted.levels() == ([], [])
    deep = ReplayBook("KXHIGHNY-25DEC05-B40.5", "l2", D(25))
    yes = [(D("0.40"), D(7)), (D("0.41"), D(3))]
    no = [(D("0.57"), D(5))]  # NO-leg prices: a YES offer at 0.43
    deep.apply(ReplayEvent(ts, "l2_snapshot", deep.ticker, (yes, no)))
    deep.apply(ReplayEvent(ts, "l2_delta", deep.ticker, ("no", D("0.57"), D(-2))))
    assert deep.asks() == [(D("0.43"), D(3))] and deep.bids()[0] == (D("0.41"), D(3))
    deep.take("bid", D("0.43"), D(3))
    assert deep.asks() == [] and deep.size_at("bid", D("0.40")) == D(7)


def test_stored_order_book_streams_are_replayed_in_no_leg_prices(conn: Any) -> None:
    ticker = "KXHIGHNY-26JUL12-B84.5"
    conn.execute(
        "INSERT INTO kalshi.markets (ticker, event_ticker, series_ticker, climate_date, "
        "strike_type, floor_strike, cap_strike, open_time, close_time, result, metadata_source) "
        "VALUES (%s, 'KXHIGHNY-26JUL12', 'KXHIGHNY', '2026-07-12', 'between', 84, 85, "
        "'2026-07-11T14:00Z', '2026-07-13T04:59Z', 'yes', 'api')",
        [ticker],
    )
    snap = at("2026-07-12T13:00:00")
    # Recorded with use_yes_price = true: the NO level 0.45 is a YES offer at 0.45.
    conn.execute(
        "INSERT INTO md.orderbook_snapshot (ticker, ts, side, price, size, seq, use_yes_price) "
        "VALUES (%s, %s, 'yes', 0.42, 10, 1, true), (%s, %s, 'no', 0.45, 6, 1, true)",
        [ticker, snap, ticker, snap],
    )
    conn.execute(
        "INSERT INTO md.orderbook_delta (ticker, ts, sid, seq, side, price, delta, use_yes_price) "
        "VALUES (%s, %s, 1, 2, 'no', 0.45, -4, true)",
        [ticker, snap + dt.timedelta(seconds=5)],
    )
    conn.commit()
    city = default_registry().by_key("new_york")
    data = ReplayData.load(conn, city, dt.date(2026, 7, 12))
    assert data.markets[ticker].book_source == "l2"
    exchange = Exchange(data, SimClock(snap), fill_model("cross"))
    assert exchange.orderbook(ticker) == {
        "yes_dollars": [["0.4200", "10.00"]],
        "no_dollars": [["0.5500", "6.00"]],
    }
    exchange.advance_to(snap + dt.timedelta(seconds=5))
    assert exchange.orderbook(ticker)["no_dollars"] == [["0.5500", "2.00"]]
    assert exchange.market_wire(ticker)["yes_ask_dollars"] == "0.4500"
