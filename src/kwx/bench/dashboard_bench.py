"""`kwx bench dashboard`: each page's first render over the configured store.

The app is served on loopback exactly as `kwx dashboard` serves it, with the clock set to
the newest minute of the city in pmf.minute (so the Now page shows real ladders, not an
empty day), and every page is requested over HTTP: the first request of each page is its
first render (one request carries all of a page's data; the browser only draws it), then
``runs`` warm requests. The budget is 1 s per page's first render.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from typing import Any, Final

import httpx
from rich.console import Console

from kwx.config import Settings
from kwx.dashboard.app import create_app
from kwx.dashboard.queries import series_in_use
from kwx.dashboard.server import serve_in_thread
from kwx.store.engine import connect

BUDGET_S: Final = 1.0


def run_dashboard_benchmark(
    settings: Settings, *, city: str, runs: int, console: Console
) -> dict[str, Any]:
    with connect(settings) as conn:
        series = series_in_use(conn).get(city)
        if series is None:
            raise SystemExit(f"bench dashboard: no pmf.minute rows for {city!r} in this store")
        row = conn.execute(
            "SELECT count(*) FROM pmf.minute WHERE city = %s AND mc_version = %s",
            (city, series.mc_version),
        ).fetchone()
        n_rows = int(row[0]) if row else 0  # type: ignore[call-overload]
    at = series.last_ts
    app = create_app(settings, clock=lambda: at)
    pages = {
        "now": "/",
        "now_json": "/api/now",
        "pnl": "/pnl",
        "models": f"/models?city={city}",
        "decisions": "/decisions",
        "readiness": "/readiness",
        "alerts": "/alerts",
        "plotly_js": "/static/plotly.min.js",
    }
    first: dict[str, float] = {}
    warm: dict[str, float] = {}
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        for name, path in pages.items():
            times = []
            for _ in range(runs + 1):
                t0 = time.perf_counter()
                response = http.get(path)
                times.append(time.perf_counter() - t0)
                response.raise_for_status()
            first[name] = round(times[0], 4)
            warm[name] = round(statistics.median(times[1:]), 4)
            console.print(f"{name:10s} first {times[0]:.3f} s  warm {warm[name]:.3f} s")
    worst = max(first.values())
    return {
        "bench": "dashboard",
        "city": city,
        "mc_version": series.mc_version,
        "pmf_minute_rows": n_rows,
        "span": [series.first_ts.isoformat(), series.last_ts.isoformat()],
        "clock": at.isoformat(),
        "first_render_s": first,
        "warm_median_s": warm,
        "max_first_render_s": worst,
        "budget_s": BUDGET_S,
        "within_budget": worst <= BUDGET_S,
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }
