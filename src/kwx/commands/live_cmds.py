"""`kwx sim serve`, `kwx run` (paper and live trading) and `kwx bench live` (issue 7)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import tempfile
import threading
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from kwx.commands.errors import fail, parse_date

console = Console()
err = Console(stderr=True)

sim_app = typer.Typer(
    no_args_is_help=True, help="A Kalshi-compatible exchange simulator and weather replay."
)


def _fail(message: str) -> typer.Exit:
    return fail(message)  # one line, whatever the console width (kwx.commands.errors)


def _start_time(text: str) -> dt.datetime | None:
    """``day`` (None: midnight local standard time), ``open`` or an ISO time (UTC if naive)."""
    if text == "day":
        return None
    if text == "open":
        return dt.datetime.min.replace(tzinfo=dt.UTC)  # clamped to the first market's open
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--start: expected 'day', 'open' or an ISO time, got {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@sim_app.command("serve")
def sim_serve(
    city: Annotated[str, typer.Option(help="City key, e.g. chicago (see `kwx cities`).")],
    date: Annotated[str, typer.Option(help="Climate date to replay, YYYY-MM-DD.")],
    speed: Annotated[
        str, typer.Option(help="Multiplier of wall time (1 … 1000) or 'max' (as fast as read).")
    ] = "1",
    fill_model: Annotated[str, typer.Option(help="cross | optimistic.")] = "cross",
    faults: Annotated[
        str,
        typer.Option(
            help="Comma list: disconnect[=s], gap[=p], dup[=p], reorder[=p], 429[=p], 5xx[=p], "
            "slow[=p], maintenance."
        ),
    ] = "",
    port: Annotated[
        int, typer.Option(help="REST port (WebSocket: port+1, weather: port+2); 0 = any free.")
    ] = 0,
    public_key: Annotated[
        Path | None,
        typer.Option(help="PEM public key that signs requests (default: a fresh key pair)."),
    ] = None,
    key_id: Annotated[
        str | None, typer.Option(help="Accept only this KALSHI-ACCESS-KEY (default: any).")
    ] = None,
    start: Annotated[
        str, typer.Option(help="'day' (local standard midnight), 'open', or an ISO time.")
    ] = "day",
    balance: Annotated[str, typer.Option(help="Starting cash, dollars.")] = "1000",
    synthetic_size: Annotated[
        str, typer.Option(help="Contracts assumed at the touch of books rebuilt from L1/trades.")
    ] = "25",
    seed: Annotated[int, typer.Option(help="Seed of the random faults.")] = 7,
    no_rate_limit: Annotated[
        bool, typer.Option("--no-rate-limit", help="Turn off the Basic-tier token buckets.")
    ] = False,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many wall seconds (default: Ctrl-C).")
    ] = None,
) -> None:
    """Replay a stored city-day as a Kalshi exchange on loopback, plus IEM/NWS weather."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from kwx.config import get_settings
    from kwx.registry import RegistryError, default_registry
    from kwx.sim.clock import parse_speed
    from kwx.sim.faults import FaultConfig
    from kwx.sim.fills import fill_model as check_fill_model
    from kwx.sim.simulator import SimConfig, Simulator
    from kwx.store.engine import connect

    try:
        place = default_registry().by_key(city)
    except (KeyError, RegistryError) as exc:
        raise _fail(f"--city: {exc}") from None
    day = parse_date(date, "--date")
    try:
        sim_speed = parse_speed(speed)
        fault_config = FaultConfig.parse(faults, seed=seed)
        check_fill_model(fill_model)
        cash = Decimal(balance)
        depth = Decimal(synthetic_size)
    except (ValueError, InvalidOperation) as exc:
        raise _fail(str(exc)) from None
    if sim_speed == "manual":
        raise _fail("--speed manual is for tests; use a multiplier or 'max'")

    private_note = None
    if public_key is not None:
        try:
            key = serialization.load_pem_public_key(public_key.read_bytes())
        except (OSError, ValueError) as exc:
            raise _fail(f"--public-key {public_key}: {exc}") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise _fail(f"--public-key {public_key}: not an RSA public key")
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        folder = Path(tempfile.mkdtemp(prefix="kwx-sim-key-"))
        pem = folder / "sim_private_key.pem"
        pem.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        pem.chmod(0o600)
        key = private.public_key()
        private_note = f"KALSHI_PRIVATE_KEY_PATH={pem}  KALSHI_API_KEY_ID={key_id or 'sim'}"

    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, markup=False)],
    )
    logging.getLogger("kwx.sim").setLevel(logging.INFO)  # a line per order, fill, close

    config = SimConfig(
        speed=sim_speed,
        start=_start_time(start),
        fill_model=fill_model,
        faults=fault_config,
        balance=cash,
        synthetic_size=depth,
        public_key=key,
        key_id=key_id,
        rate_limit=not no_rate_limit,
        rest_port=port,
        ws_port=port + 1 if port else 0,
        weather_port=port + 2 if port else 0,
    )
    try:
        with connect(get_settings()) as conn:
            sim = Simulator.from_store(conn, place, day, config)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    with sim:
        for line in sim.banner():
            console.print(line, highlight=False, soft_wrap=True)
        if private_note:
            console.print(private_note, highlight=False, soft_wrap=True)
        console.print("[dim]Ctrl-C stops[/]")
        began = time.monotonic()
        try:
            while duration is None or time.monotonic() - began < duration:
                if sim.wait_finished(0.5) and duration is None:
                    console.print("replay finished; still serving (Ctrl-C stops)")
                    while True:
                        time.sleep(3600)
        except KeyboardInterrupt:
            pass
    console.print("stopped")


def _parse_until(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--until: expected an ISO time, got {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def run_cmd(
    mode: Annotated[str, typer.Option(help="paper (simulated fills on live data) or live.")] = (
        "paper"
    ),
    city: Annotated[
        list[str] | None, typer.Option(help="City key (repeat for several; default chicago).")
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Confirm live trading (also needs TRADE_MODE=live).")
    ] = False,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many wall seconds (default: Ctrl-C).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Stop at this time (ISO; UTC if naive), on the clock used.")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many minutes.")] = None,
    fill_model: Annotated[
        str, typer.Option(help="Paper fills: taker | maker-a | maker-b | queue.")
    ] = "queue",
    clock: Annotated[
        str,
        typer.Option(
            help="wall (Kalshi), or exchange: follow the time the exchange reports "
            "(a `kwx sim serve` replay at any speed; needs keys)."
        ),
    ] = "wall",
    confirm_rest: Annotated[
        bool,
        typer.Option(
            "--confirm-rest/--rest-fallback-only",
            help="Read trades and books over REST every minute too, or only when the "
            "WebSocket is down.",
        ),
    ] = True,
    history: Annotated[
        bool, typer.Option(help="Seed the cross-day signal terms from the store's past days.")
    ] = True,
    classifier: Annotated[
        str, typer.Option(help="Move-classifier horizon for S's ε term ('' for none).")
    ] = "5m",
    weather: Annotated[
        str,
        typer.Option(
            help="live: run the weather model for minutes pmf.minute lacks; store: read only."
        ),
    ] = "live",
    keep_orders: Annotated[
        bool, typer.Option("--keep-orders", help="Leave resting orders on exit.")
    ] = False,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Paper: start flat instead of continuing the previous paper run's positions "
            "and resting orders on this exchange.",
        ),
    ] = False,
    edge_gate: Annotated[
        bool,
        typer.Option(
            help="Enter only in edge cells measured open (kwx fusion edge); --no-edge-gate "
            "enters wherever the signals do (a mechanics check, not a measured edge)."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's stats as JSON.")] = (
        False
    ),
) -> None:
    """The backtest's agent and strategy on live data: paper fills or Kalshi orders."""
    from kwx.config import get_settings
    from kwx.live.clocks import ExchangeClock, StoppableWallClock
    from kwx.live.runner import LiveError, LiveOptions, LiveRun, refuse_live, settings_signer
    from kwx.registry import RegistryError, default_registry
    from kwx.sources.http import SourceError
    from kwx.sources.kalshi_rest import KalshiRest
    from kwx.store import migrate
    from kwx.store.engine import StoreError, connect
    from kwx.strategy.config import ExecutionConfig, StrategyConfig

    if mode not in ("paper", "live"):
        raise _fail(f"--mode: expected paper or live, got {mode!r}")
    if weather not in ("live", "store"):
        raise _fail(f"--weather: expected live or store, got {weather!r}")
    if clock not in ("wall", "exchange"):
        raise _fail(f"--clock: expected wall or exchange, got {clock!r}")
    if mode == "paper" and live:
        raise _fail("--live is for --mode live only")
    settings = get_settings()
    if mode == "live":
        why = refuse_live(settings, live)
        if why is not None:
            raise _fail(f"refusing to trade live: {why}")
    try:
        cities = [default_registry().by_key(c).key for c in (city or ["chicago"])]
    except (KeyError, RegistryError) as exc:
        raise _fail(f"--city: {exc}") from None
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, markup=False)],
    )
    logging.getLogger("kwx.live").setLevel(logging.INFO)
    signer = settings_signer(settings)
    if mode == "live" and signer is None:
        raise _fail("live trading needs KALSHI_API_KEY_ID and KALSHI_PRIVATE_KEY_PATH")
    rest = KalshiRest.from_settings(settings)
    stop = threading.Event()
    if clock == "exchange":
        if signer is None:
            raise _fail(
                "--clock exchange reads the exchange's time from /portfolio/balance: "
                "set KALSHI_API_KEY_ID and KALSHI_PRIVATE_KEY_PATH"
            )

        def probe() -> dt.datetime | None:
            stamp = rest.balance().updated_ts
            return None if stamp is None else dt.datetime.fromtimestamp(stamp, tz=dt.UTC)

        run_clock: Any = ExchangeClock(probe, stop=stop)
    else:
        run_clock = StoppableWallClock(stop)
    options = LiveOptions(
        mode="live" if mode == "live" else "paper",
        cities=cities,
        fill_model=fill_model,
        until=_parse_until(until),
        max_steps=max_steps,
        confirm_rest=confirm_rest,
        history=history,
        classifier_horizon=classifier or None,
        cancel_on_exit=not keep_orders,
        allow_live=live,
        weather="live" if weather == "live" else "store",
        restore_paper=not fresh,
        config=StrategyConfig(execution=ExecutionConfig(edge_gate=edge_gate)),
    )

    def on_signal(signum: int, frame: object) -> None:
        del frame
        err.print(f"[yellow]signal {signum}: stopping at the next minute[/]")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()

    def on_step(t: dt.datetime) -> None:
        console.print(f"[dim]{t.isoformat()}[/] step done", highlight=False)

    try:
        migrate.upgrade(settings)  # the live tables (0011) and everything before them
        with connect(settings) as conn:
            run = LiveRun(
                conn,
                settings,
                options,
                rest=rest,
                clock=run_clock,
                ws_url=settings.kalshi_ws_url,
                signer=signer,
                stop=stop,
                on_step=None if as_json else on_step,
            )
            outcome = run.run()
    except (LiveError, StoreError, SourceError, ValueError) as exc:
        raise _fail(str(exc)) from None
    finally:
        rest.close()
    if as_json:
        print(json.dumps(outcome.stats, default=str))
    else:
        console.print(
            f"run {outcome.run_id} ({outcome.mode}): {json.dumps(outcome.agent.as_dict())}"
        )


def bench_live(
    city: Annotated[str, typer.Option(help="City key.")] = "chicago",
    date: Annotated[str, typer.Option(help="Climate date to replay.")] = "2024-12-05",
    runs: Annotated[int, typer.Option(min=1, help="Replays of the day (median taken).")] = 3,
    max_ticks: Annotated[
        int | None, typer.Option(help="Sample this many ticks evenly (default: all).")
    ] = None,
) -> None:
    """Benchmark: tick-to-decision latency of the live loop for a city's brackets (p50/p99)."""
    from kwx.bench.live_bench import run_live_benchmark
    from kwx.store.engine import StoreError

    day = parse_date(date, "--date")
    try:
        figures = run_live_benchmark(city, day, runs=runs, max_ticks=max_ticks, console=err)
    except (StoreError, ValueError, KeyError) as exc:
        raise _fail(str(exc)) from None
    print(json.dumps(figures))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    app.add_typer(sim_app, name="sim")
    app.command("run")(run_cmd)
    bench_app.command("live")(bench_live)
