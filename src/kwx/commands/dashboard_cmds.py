"""`kwx dashboard`, `kwx alerts check` and `kwx bench dashboard` (issue 17)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Annotated

import psycopg
import typer
from rich.console import Console

err = Console(stderr=True)

alerts_app = typer.Typer(no_args_is_help=True, help="Alerts: evaluate, store, send.")


def dashboard_cmd(
    host: Annotated[str, typer.Option(help="Address to bind; non-local needs --token.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8050,
    token: Annotated[
        str | None,
        typer.Option(help="Require this token (else DASHBOARD_TOKEN, if set).", show_default=False),
    ] = None,
) -> None:
    """Serve the read-only monitoring dashboard (Now, P&L, Models, Decisions, Readiness)."""
    import uvicorn

    from kwx.config import get_settings
    from kwx.dashboard.app import check_bind, create_app
    from kwx.dashboard.settings import MonitorSettings

    ms = MonitorSettings()
    secret = token or (ms.dashboard_token.get_secret_value() if ms.dashboard_token else None)
    problem = check_bind(host, secret)
    if problem:
        err.print(f"[bold red]error:[/] {problem}")
        raise typer.Exit(code=1)
    app = create_app(get_settings(), token=secret, ece_max=ms.alert_ece_max)
    err.print(f"kwx dashboard on http://{host}:{port}" + (" (token required)" if secret else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning")


@alerts_app.command("check")
def alerts_check(
    once: Annotated[bool, typer.Option("--once", help="Evaluate once and exit.")] = False,
    interval: Annotated[float, typer.Option(min=1.0, help="Seconds between checks.")] = 60.0,
) -> None:
    """Evaluate every alert condition; fire (log, store, POST) each new one once."""
    from kwx.config import get_settings
    from kwx.dashboard.alerts import check
    from kwx.dashboard.settings import MonitorSettings
    from kwx.store.engine import StoreError, connect

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings, ms = get_settings(), MonitorSettings()
    log = logging.getLogger("kwx.alerts")
    while True:
        try:
            with connect(settings) as conn:
                out = check(conn, settings, ms)
        except (StoreError, psycopg.Error) as exc:
            # A check that cannot reach the store says so and, in a loop, tries again: the
            # watcher must outlive a database restart.
            log.error("alerts check failed: %s", type(exc).__name__)
            if once:
                raise typer.Exit(code=1) from exc
            time.sleep(interval)
            continue
        print(
            json.dumps(
                {
                    "at": dt.datetime.now(dt.UTC).isoformat(),
                    "holding": out.holding,
                    "fired": out.fired,
                    "sent": out.sent,
                    "send_errors": out.send_errors,
                }
            ),
            flush=True,
        )
        if once:
            return
        time.sleep(interval)


def bench_dashboard(
    city: Annotated[str, typer.Option(help="City whose year the Models page shows.")] = "chicago",
    runs: Annotated[int, typer.Option(min=1, help="Warm repetitions after the first.")] = 3,
) -> None:
    """First render of every page over the store (served on loopback); one JSON line last."""
    from kwx.bench.dashboard_bench import run_dashboard_benchmark
    from kwx.config import get_settings

    print(json.dumps(run_dashboard_benchmark(get_settings(), city=city, runs=runs, console=err)))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this area's commands to the top-level app and the bench app."""
    app.command("dashboard")(dashboard_cmd)
    app.add_typer(alerts_app, name="alerts")
    bench_app.command("dashboard")(bench_dashboard)
