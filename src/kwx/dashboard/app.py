"""The dashboard web app: Starlette routes over the query modules, read-only.

Each page is one request: the server renders a thin HTML shell with the page's data embedded
as JSON, and ``dash.js`` draws the tables and the Plotly charts from it (``plotly.min.js`` is
served from the ``plotly`` Python package: nothing is fetched from a CDN, it works offline).
The Now and Decisions pages then poll their JSON endpoints, so they update without reload.

Read-only by construction: every request opens its own connection in a read-only
transaction (``default_transaction_read_only``), so no bug in a page can write the store.
Bound to localhost by default; with a token (``--token`` or ``DASHBOARD_TOKEN``) every request
must carry it (``Authorization: Bearer``, the ``kwx_token`` cookie, or ``?token=`` once,
which sets the cookie).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from kwx.config import Settings
from kwx.dashboard import calibration, pnl, queries, readiness
from kwx.dashboard.queries import Conn
from kwx.store.engine import connect

PAGES: Final = (
    ("now", "/", "Now"),
    ("pnl", "/pnl", "P&L"),
    ("models", "/models", "Models"),
    ("decisions", "/decisions", "Decisions"),
    ("readiness", "/readiness", "Go-live readiness"),
    ("alerts", "/alerts", "Alerts"),
)
# The plotly package ships plotly.js; serving that copy keeps the dashboard offline.
PLOTLY_JS: Final = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
STATIC: Final = files("kwx.dashboard") / "static"
COOKIE: Final = "kwx_token"


def _dumps(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value, default=str).replace("</", "<\\/")


class TokenMiddleware(BaseHTTPMiddleware):
    """Every request must carry the token (constant-time compare)."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        auth = request.headers.get("authorization", "")
        given = (
            auth.removeprefix("Bearer ").strip()
            if auth.startswith("Bearer ")
            else request.cookies.get(COOKIE) or request.query_params.get("token") or ""
        )
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return JSONResponse({"error": "token required"}, status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return response


class Dashboard:
    """The app's state: settings, a clock (injectable for tests) and the templates."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        ece_max: float = 0.10,
    ) -> None:
        self.settings = settings
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.ece_max = ece_max
        self.env = Environment(
            loader=PackageLoader("kwx.dashboard", "templates"),
            autoescape=select_autoescape(["html"]),
        )

    @contextmanager
    def conn(self) -> Iterator[Conn]:
        with connect(self.settings) as conn:
            conn.execute("SET default_transaction_read_only = on")
            conn.execute("SET jit = off")
            conn.commit()
            yield conn

    def page(self, name: str, title: str, data: Any, **extra: Any) -> HTMLResponse:
        html = self.env.get_template("page.html").render(
            page=name, title=title, pages=PAGES, data=_dumps(data), **extra
        )
        return HTMLResponse(html)

    # ------------------------------------------------------------ pages

    def now_page(self, request: Request) -> Response:
        with self.conn() as conn:
            data = queries.now_state(conn, self.clock())
        return self.page("now", "Now", data)

    def now_json(self, request: Request) -> Response:
        with self.conn() as conn:
            return JSONResponse(queries.now_state(conn, self.clock()))

    def pnl_page(self, request: Request) -> Response:
        shown = request.query_params.get("backtests", "")
        n = min(int(shown), 50) if shown.isdigit() else pnl.BACKTESTS_SHOWN
        with self.conn() as conn:
            data = pnl.pnl_page(conn, n)
        return self.page("pnl", "P&L", data)

    def models_page(self, request: Request) -> Response:
        with self.conn() as conn:
            series = queries.series_in_use(conn)
            city = request.query_params.get("city") or (min(series) if series else "")
            data = calibration.models_page(conn, only=city) if city else {"cities": []}
            data["city"] = city
            data["all_cities"] = sorted(series)
            data["versions"] = queries.model_versions(conn)
        return self.page("models", "Models", data)

    def _decision_filters(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        out: dict[str, Any] = {k: q.get(k) or None for k in ("mode", "ticker", "kind", "city")}
        out["run_id"] = int(q["run_id"]) if q.get("run_id", "").isdigit() else None
        return out

    def decisions_page(self, request: Request) -> Response:
        filters = self._decision_filters(request)
        with self.conn() as conn:
            rows = queries.decisions(conn, **filters)
        return self.page("decisions", "Decisions", {"rows": rows, "filters": filters})

    def decisions_json(self, request: Request) -> Response:
        filters = self._decision_filters(request)
        after = request.query_params.get("after_id", "")
        with self.conn() as conn:
            rows = queries.decisions(
                conn, **filters, after_id=int(after) if after.isdigit() else None
            )
        return JSONResponse({"rows": rows})

    def market_json(self, request: Request) -> Response:
        ticker = request.query_params.get("ticker", "")
        try:
            around = dt.datetime.fromisoformat(request.query_params.get("ts", ""))
        except ValueError:
            return JSONResponse({"error": "ts must be an ISO time"}, status_code=400)
        if around.tzinfo is None:
            around = around.replace(tzinfo=dt.UTC)
        with self.conn() as conn:
            return JSONResponse(queries.market_minutes(conn, ticker, around))

    def readiness_page(self, request: Request) -> Response:
        with self.conn() as conn:
            data = readiness.verdicts(conn, ece_max=self.ece_max)
        return self.page("readiness", "Go-live readiness", data)

    def alerts_page(self, request: Request) -> Response:
        with self.conn() as conn:
            data = queries.jsonable(queries.recent_alerts(conn, 500))
        return self.page("alerts", "Alerts", data)

    # ------------------------------------------------------------ static

    def plotly_js(self, request: Request) -> Response:
        return FileResponse(PLOTLY_JS, media_type="application/javascript")

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("dash.js", "dash.css"):
            return JSONResponse({"error": "not found"}, status_code=404)
        media = "application/javascript" if name.endswith(".js") else "text/css"
        return Response(STATIC.joinpath(name).read_text(encoding="utf-8"), media_type=media)


def create_app(
    settings: Settings,
    *,
    token: str | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    ece_max: float = 0.10,
) -> Starlette:
    """The ASGI app (served by ``kwx dashboard`` with uvicorn; tests serve it the same way)."""
    d = Dashboard(settings, clock=clock, ece_max=ece_max)
    routes = [
        Route("/", d.now_page),
        Route("/api/now", d.now_json),
        Route("/pnl", d.pnl_page),
        Route("/models", d.models_page),
        Route("/decisions", d.decisions_page),
        Route("/api/decisions", d.decisions_json),
        Route("/api/market", d.market_json),
        Route("/readiness", d.readiness_page),
        Route("/alerts", d.alerts_page),
        Route("/static/plotly.min.js", d.plotly_js),
        Route("/static/{name}", d.static),
    ]
    middleware = [Middleware(TokenMiddleware, token=token)] if token else []
    return Starlette(routes=routes, middleware=middleware)


LOCAL_HOSTS: Final = ("127.0.0.1", "localhost", "::1")


def check_bind(host: str, token: str | None) -> str | None:
    """Why this bind is refused, or None: a non-local address needs a token."""
    if host not in LOCAL_HOSTS and not token:
        return f"--host {host} is not local: set --token (or DASHBOARD_TOKEN) to serve it"
    return None
