"""Alerts against a real store and a real webhook receiver on loopback.

Every condition is made true in a fresh store by writing the rows that make it so; the
check then fires each exactly once (a second check sends nothing), the receiver gets one
POST per alert in the configured format, and no payload carries a secret — even when the
store's own text contains one.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from kwx.config import Settings
from kwx.dashboard import alerts
from kwx.dashboard.settings import MonitorSettings, WebhookFormat
from kwx.store.engine import connect
from tests.conftest import needs_data
from tests.dashboard.conftest import Store

NOW = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
VC_KEY = "vc-secret-key-4242"
Conn = psycopg.Connection[tuple[object, ...]]


def _conditions(conn: Conn) -> None:
    """Rows that make kill switch, stale feed, seq gap, reconciliation, settlement
    disagreement and refit rejected hold at NOW."""
    run = conn.execute(
        "INSERT INTO exec.live_runs (mode, cities, exchange, started_at, status, stats) "
        "VALUES ('live', '{chicago}', 'http://x', %s, 'running', %s) RETURNING run_id",
        (NOW - dt.timedelta(hours=2), json.dumps({"reconcile": {"refused": ["abc"]}})),
    ).fetchone()
    assert run is not None
    risk = {"killed": True, "kill_reason": "daily loss 101 > 100 (chicago)"}
    conn.execute(
        "INSERT INTO exec.decisions (mode, run_id, ts, ticker, payload) VALUES "
        "('live', %s, %s, 'KXHIGHCHI-26MAR02', %s)",
        (run[0], NOW - dt.timedelta(hours=1), json.dumps({"kind": "evaluation", "risk": risk})),
    )
    for seq, minute in ((1, 0), (2, 1), (5, 2), (6, 3)):
        conn.execute(
            "INSERT INTO md.orderbook_delta (ticker, ts, sid, seq, side, price, delta) "
            "VALUES ('KXHIGHCHI-26MAR02-B40.5', %s, 3, %s, 'yes', 0.4, 1)",
            (NOW - dt.timedelta(minutes=30 - minute), seq),
        )
    conn.execute(
        "INSERT INTO exec.orders (client_order_id, mode, run_id, ticker, side, action, price, "
        "count_fp, status, created_at) VALUES (%s, 'live', %s, 'KXHIGHCHI-26MAR02-B40.5', "
        "'yes', 'buy', 0.4, 3, 'pending', %s)",
        (uuid.uuid4(), run[0], NOW - dt.timedelta(minutes=45)),
    )
    conn.execute(
        "INSERT INTO exec.positions (mode, run_id, ticker, position_fp, cost) "
        "VALUES ('live', %s, 'KXHIGHCHI-26MAR02-B40.5', 4, 1.6)",
        (run[0],),
    )
    conn.execute(
        "INSERT INTO kalshi.series (series_ticker, city_key) VALUES ('KXHIGHCHI', 'chicago') "
        "ON CONFLICT (series_ticker) DO UPDATE SET city_key = 'chicago'"
    )
    conn.execute(
        "INSERT INTO kalshi.markets (ticker, event_ticker, series_ticker, climate_date, "
        "strike_type, floor_strike, cap_strike, result, settled_tmax, metadata_source) VALUES "
        "('KXHIGHCHI-26MAR01-B40.5', 'KXHIGHCHI-26MAR01', 'KXHIGHCHI', '2026-03-01', "
        "'between', 40, 41, 'yes', 41, 'api')"
    )
    conn.execute(
        "INSERT INTO wx.settlement (city, climate_date, source, tmax_first, tmax_final) "
        "VALUES ('chicago', '2026-03-01', 'official', 42, 42)"
    )
    conn.execute(
        "INSERT INTO model.runs (kind, city, metrics) VALUES ('refit', 'chicago', %s)",
        (json.dumps({"accepted": False, "reason": f"worse log-loss; key was {VC_KEY}"}),),
    )
    conn.commit()


EXPECTED = {
    "kill_switch",
    "feed_stale",
    "seq_gap",
    "reconciliation",
    "settlement_disagreement",
    "refit_rejected",
}


@pytest.mark.parametrize("fmt", ["json", "slack", "telegram"])
def test_each_condition_fires_once_to_the_webhook_without_secrets(
    settings: Settings, httpserver: HTTPServer, fmt: WebhookFormat
) -> None:
    received: list[bytes] = []

    def hook(request: Request) -> Response:
        received.append(request.get_data())
        return Response("ok")

    httpserver.expect_request("/hook/bot-token-xyz", method="POST").respond_with_handler(hook)
    url = httpserver.url_for("/hook/bot-token-xyz")
    settings = settings.model_copy(update={"vc_api_key": SecretStr(VC_KEY)})
    ms = MonitorSettings(
        alert_webhook_url=SecretStr(url), alert_webhook_format=fmt, alert_telegram_chat_id="77"
    )
    with connect(settings) as conn:
        _conditions(conn)
        first = alerts.check(conn, settings, ms, now=NOW)
        again = alerts.check(conn, settings, ms, now=NOW + dt.timedelta(minutes=1))
        stored = conn.execute(
            "SELECT kind, count(*), count(sent_at) FROM meta.alerts GROUP BY kind"
        ).fetchall()
    kinds = {k.split(":")[0] for k in first.fired}
    assert kinds == EXPECTED
    assert first.sent == len(first.fired) == len(received) and first.send_errors == 0
    assert again.fired == [] and again.holding == first.holding and len(received) == first.sent
    assert {k for k, _, _ in stored} == EXPECTED
    assert all(n == sent for _, n, sent in stored)
    # The reconciliation condition holds three ways (refused, pending, position ≠ fills).
    assert sum(k.startswith("reconciliation:") for k in first.fired) == 3
    for body in received:
        text = body.decode()
        assert VC_KEY not in text and "bot-token-xyz" not in text
        doc: dict[str, Any] = json.loads(text)
        if fmt == "json":
            assert doc["source"] == "kwx" and doc["key"] in first.fired
        elif fmt == "slack":
            assert set(doc) == {"text"} and doc["text"].startswith("[kwx ")
        else:
            assert doc["chat_id"] == "77" and doc["text"].startswith("[kwx ")
    refit = [json.loads(b) for b in received if b"refit" in b]
    assert refit and "***" in json.dumps(refit)


def test_no_alert_on_a_quiet_store_and_a_failing_webhook_is_recorded(
    settings: Settings, httpserver: HTTPServer
) -> None:
    ms = MonitorSettings(alert_webhook_url=SecretStr(httpserver.url_for("/down")))
    httpserver.expect_request("/down", method="POST").respond_with_data("no", status=503)
    with connect(settings) as conn:
        assert alerts.check(conn, settings, ms, now=NOW).holding == 0
        conn.execute(
            "INSERT INTO model.runs (kind, city, metrics) VALUES ('refit', 'chicago', %s)",
            (json.dumps({"status": "rejected"}),),
        )
        conn.commit()
        out = alerts.check(conn, settings, ms, now=NOW)
        row = conn.execute("SELECT sent_at, send_error FROM meta.alerts").fetchone()
    assert out.fired and out.send_errors == 1 and out.sent == 0
    assert row == (None, "HTTP 503")


@needs_data()
def test_calibration_drift_fires_over_its_threshold_only(store: Store) -> None:
    quiet = MonitorSettings(alert_ece_max=1.0)
    strict = MonitorSettings(alert_ece_max=1e-9)
    with connect(store.settings) as conn:
        assert alerts.calibration_drift(conn, quiet) == []
        (drift,) = alerts.calibration_drift(conn, strict)
    assert drift.key == "calibration_drift:chicago:p_wx:2024-W49"


def test_webhook_errors_name_no_url() -> None:
    error = alerts._post("http://127.0.0.1:9/secret-token", "{}", httpx.Client(timeout=1))
    assert error is not None and "secret-token" not in error
