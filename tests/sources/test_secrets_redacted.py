"""Secrets out of every repr, log line, stored error body and ledger row (issue 15).

Clients run with known fake secrets against loopback servers that echo the request back in
their error bodies (headers as ``Name: value`` lines, as JSON, and the query string), which is
how a key id, a signature or a ``key=`` parameter used to reach ``meta.bad_input``. Then every
place kwx keeps or shows text is searched for the secret strings: the clients' reprs, the
log (caplog), the exception texts and bodies, meta.bad_input (through the real storage path
and through the backfill's failure path), exec.orders (a refused order's reason), and the
settings summary that `kwx config` prints.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from kwx.config import Settings
from kwx.domain.secrets import redact
from kwx.live.order_ledger import OrderLedger
from kwx.sources.http import RetryPolicy, SourceError
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_rest import KalshiRest
from kwx.sources.ratelimit import TokenBucket
from kwx.sources.visualcrossing import VisualCrossingClient
from kwx.store.bad_input import record_bad_input

KEY_ID = "kid-7f3e9c1a-SECRET-42"
VC_KEY = "VCKEYSECRET0123456789"
DB_PASSWORD = "pw-SECRET-hunter2"
FAST = RetryPolicy(base_delay_s=0.001, max_delay_s=0.002, max_attempts=2)


def _echo(request: Request) -> Response:
    """What a chatty server does on a 4xx: our request back, every way it can be written."""
    lines = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
    body = {
        "error": "bad request",
        "headers": dict(request.headers.items()),
        "url": request.url,
        "query": request.query_string.decode(),
        "dump": lines,
        "repr": repr(dict(request.headers.items())),
    }
    return Response(json.dumps(body) + "\n" + lines, status=400, mimetype="application/json")


@pytest.fixture
def echo(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/", method="GET").respond_with_handler(_echo)
    for path in ("/trade-api/v2/portfolio/balance", "/trade-api/v2/series/KXHIGHCHI"):
        httpserver.expect_request(path).respond_with_handler(_echo)
    httpserver.expect_request(
        "/vc/timeline/41.78,-87.75/2024-12-01/2024-12-02"
    ).respond_with_handler(_echo)
    return httpserver


def _secrets(signature_seen: list[str]) -> list[str]:
    return [KEY_ID, VC_KEY, DB_PASSWORD, *signature_seen]


def _assert_clean(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} leaks {secret[:6]}…: {text[:400]}"


def test_no_secret_survives_an_echoing_server(
    echo: HTTPServer, conn: psycopg.Connection[tuple[object, ...]], caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        kwx_database_url=SecretStr(f"postgresql://kwx:{DB_PASSWORD}@127.0.0.1:1/kwx"),
        vc_api_key=SecretStr(VC_KEY),
        kalshi_api_key_id=SecretStr(KEY_ID),
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = KalshiSigner(KEY_ID, key)
    signatures = [signer.headers("GET", "/x")["KALSHI-ACCESS-SIGNATURE"]]
    rest = KalshiRest(
        echo.url_for("/trade-api/v2"),
        signer=signer,
        retry=FAST,
        read_bucket=TokenBucket(1000, 1000),
        write_bucket=TokenBucket(1000, 1000),
    )
    vc = VisualCrossingClient(echo.url_for("/vc"), SecretStr(VC_KEY), retry=FAST)
    caplog.set_level(logging.DEBUG)

    errors: list[SourceError] = []
    for call in (rest.balance, lambda: rest.get_series("KXHIGHCHI")):
        with pytest.raises(SourceError) as info:
            call()
        errors.append(info.value)
    with pytest.raises(SourceError) as vc_info:
        vc.timeline("41.78,-87.75", dt.date(2024, 12, 1), dt.date(2024, 12, 2), include=["hours"])
    errors.append(vc_info.value)
    # The server did see (and echo) the secrets: the test would catch a leak.
    raw_echo = echo.log[0][1].get_data(as_text=True)
    assert KEY_ID in raw_echo
    signatures.append(json.loads(raw_echo.split("\n")[0])["headers"]["Kalshi-Access-Signature"])
    secrets = _secrets(signatures)

    _assert_clean(repr(signer) + repr(rest) + repr(vc) + repr(settings), secrets, "a repr")
    _assert_clean(json.dumps(settings.describe()), secrets, "kwx config")
    for exc in errors:
        _assert_clean(f"{exc} {exc.url} {exc.body}", secrets, "an exception")
        record_bad_input(
            conn,
            source=exc.source,
            location=exc.url or "?",
            field=None,
            message=str(exc),
            raw=exc.body,
        )
    # The storage path alone, given the server's unredacted text, redacts too.
    record_bad_input(
        conn, source="kalshi", location="raw", field=None, message="echo", raw=raw_echo
    )
    conn.commit()
    # A refused live order keeps the exchange's answer in exec.orders.
    conn.autocommit = True  # the ledger writes each row durably at once
    ledger = OrderLedger(conn, mode="live", exchange=rest.base_url)
    coid = "6b1f2d3e-9a3c-4f0e-8f7a-2c5d1e0b7a42"
    ledger.pending(
        client_order_id=coid,
        run_id=None,
        ticker="KXHIGHCHI-24DEC05-B26.5",
        event_ticker="KXHIGHCHI-24DEC05",
        side="yes",
        action="buy",
        kind="limit",
        price=Decimal("0.20"),
        count=Decimal(5),
        decided_at=dt.datetime(2024, 12, 5, 15, tzinfo=dt.UTC),
        request={"ticker": "KXHIGHCHI-24DEC05-B26.5"},
    )
    ledger.refused(coid, f"create: {errors[0]}")

    logging.getLogger("kwx.test").warning("answer was %s", raw_echo)
    _assert_clean(caplog.text, secrets, "the log")
    for record in caplog.records:
        _assert_clean(record.getMessage(), secrets, "a log record")

    stored = conn.execute("SELECT source, location, message, raw FROM meta.bad_input").fetchall()
    assert len(stored) == len(errors) + 1
    _assert_clean(json.dumps([list(map(str, r)) for r in stored]), secrets, "meta.bad_input")
    assert "***" in str(stored[-1][3])  # the echo was there, redacted, not dropped
    for table in ("exec.orders", "exec.fills", "exec.decisions", "exec.positions"):
        rows = conn.execute(f"SELECT to_jsonb(t)::text FROM {table} t").fetchall()
        _assert_clean(" ".join(str(r[0]) for r in rows), secrets, table)


@pytest.mark.parametrize(
    "text",
    [
        "KALSHI-ACCESS-KEY: abc-123-def\nKALSHI-ACCESS-SIGNATURE: c2lnbmF0dXJl+/==",
        '{"KALSHI-ACCESS-KEY": "abc-123-def", "Authorization": "Bearer abc-123-def"}',
        "{'kalshi-access-key': 'abc-123-def'}",
        "GET /timeline?unitGroup=us&key=abc-123-def&include=hours",
        "authorization: Basic abc-123-def",
        "-----BEGIN RSA PRIVATE KEY-----\nabc-123-def\n-----END RSA PRIVATE KEY-----",
        "x-api-key=abc-123-def",
    ],
)
def test_redact_by_shape(text: str) -> None:
    out = redact(text)
    assert "abc-123-def" not in out
    assert "***" in out


def test_redact_keeps_ordinary_text() -> None:
    text = "KXHIGHCHI-24DEC05-B26.5: price 0.42, ticker=KXHIGHCHI, monkey=1"
    assert redact(text) == text
