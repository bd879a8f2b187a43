"""The app without a browser: every page on an empty store, the token, read-only, the bind."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from kwx.cli import app as cli
from kwx.config import Settings
from kwx.dashboard.app import PLOTLY_JS, Dashboard, check_bind, create_app
from kwx.dashboard.server import serve_in_thread

PAGES = ("/", "/api/now", "/pnl", "/models", "/decisions", "/api/decisions", "/readiness")


def test_every_page_renders_on_an_empty_store(settings: Settings) -> None:
    with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        _every_page(client)


def _every_page(client: httpx.Client) -> None:
    for path in (*PAGES, "/alerts", "/static/dash.js", "/static/dash.css"):
        assert client.get(path).status_code == 200, path
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and js.content == PLOTLY_JS.read_bytes()
    assert client.get("/static/../../config.py").status_code == 404
    assert client.get("/api/market?ticker=X&ts=nope").status_code == 400


def test_a_token_is_required_when_set(settings: Settings) -> None:
    app = create_app(settings, token="t0ken")
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        _token(client)


def _token(client: httpx.Client) -> None:
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer t0ken"}).status_code == 200
    assert client.get("/pnl?token=t0ken").status_code == 200  # sets the cookie
    assert client.get("/pnl").status_code == 200


def test_the_apps_connections_are_read_only(settings: Settings) -> None:
    with (
        Dashboard(settings).conn() as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("INSERT INTO meta.alerts (dedup_key, kind, severity, message) "
                     "VALUES ('k', 'x', 'info', 'm')")  # fmt: skip


def test_a_non_local_bind_needs_a_token() -> None:
    assert check_bind("127.0.0.1", None) is None
    assert check_bind("0.0.0.0", "t") is None
    assert "token" in (check_bind("0.0.0.0", None) or "")
    result = CliRunner().invoke(cli, ["dashboard", "--host", "0.0.0.0"], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "token" in result.output
