"""Fuzzing the Kalshi REST simulator's request parsing: never a dropped connection, never a
5xx for malformed input; a 4xx with a message.

Two layers:

* the request pipeline (:meth:`KalshiRestServer.handle`) with hypothesis-made methods, paths
  (every route, its parameters fuzzed), query strings, headers and bodies (JSON of any shape,
  or bytes), validly signed or not, so the fuzz reaches the handlers behind authentication;
* the wire: raw sockets sending malformed framing (Content-Length that is not a number,
  negative, several, larger than the body, chunked; garbage request lines), each answered
  with a status line, a 4xx and a JSON message, and the server still answering afterwards.
"""

from __future__ import annotations

import json
import socket
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwx.sim.kalshi_rest_server import BASE_PATH, KalshiDataset, KalshiRestServer
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_models import HistoricalCutoff

KEY_ID = "fuzz-key"
CUT = datetime(2026, 6, 14, tzinfo=UTC)
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SIGNER = KalshiSigner(KEY_ID, KEY)

ROUTES = [
    ("GET", "/series"),
    ("GET", "/series/{x}"),
    ("GET", "/series/{x}/markets/{x}/candlesticks"),
    ("GET", "/events"),
    ("GET", "/events/{x}"),
    ("GET", "/markets"),
    ("GET", "/markets/trades"),
    ("GET", "/markets/candlesticks"),
    ("GET", "/markets/orderbooks"),
    ("GET", "/markets/{x}"),
    ("GET", "/markets/{x}/orderbook"),
    ("GET", "/historical/cutoff"),
    ("GET", "/historical/markets"),
    ("GET", "/historical/markets/{x}"),
    ("GET", "/historical/markets/{x}/candlesticks"),
    ("GET", "/historical/trades"),
    ("GET", "/exchange/status"),
    ("GET", "/exchange/schedule"),
    ("GET", "/account/limits"),
    ("GET", "/portfolio/balance"),
    ("GET", "/portfolio/positions"),
    ("GET", "/portfolio/fills"),
    ("GET", "/portfolio/orders"),
    ("GET", "/portfolio/orders/{x}"),
    ("POST", "/portfolio/events/orders"),
    ("DELETE", "/portfolio/events/orders"),
    ("DELETE", "/portfolio/events/orders/{x}"),
    ("POST", "/portfolio/events/orders/{x}/amend"),
    ("POST", "/portfolio/events/orders/{x}/decrease"),
    ("POST", "/portfolio/orders"),
    ("DELETE", "/portfolio/orders/{x}"),
    ("PUT", "/markets"),
    ("GET", "/nowhere/{x}"),
]
TICKER = "KXHIGHNY-26JUL000-T0001"
QUERY_KEYS = [
    "limit",
    "cursor",
    "ticker",
    "tickers",
    "market_tickers",
    "event_ticker",
    "series_ticker",
    "status",
    "min_ts",
    "max_ts",
    "min_close_ts",
    "max_close_ts",
    "start_ts",
    "end_ts",
    "period_interval",
    "depth",
    "with_nested_markets",
    "order_id",
    "settlement_status",
    "include_latest_before_start",
]
ORDER_KEYS = [
    "ticker",
    "client_order_id",
    "side",
    "action",
    "type",
    "count",
    "count_fp",
    "price",
    "yes_price",
    "no_price",
    "yes_price_dollars",
    "time_in_force",
    "post_only",
    "reduce_only",
    "expiration_ts",
    "reduce_by",
    "reduce_to",
    "cancel_order_on_pause",
    "buy_max_cost",
]


def _dataset() -> KalshiDataset:
    data = KalshiDataset()
    event = "KXHIGHNY-26JUL000"
    data.events[event] = {"event_ticker": event, "series_ticker": "KXHIGHNY"}
    data.markets[TICKER] = {
        "ticker": TICKER,
        "event_ticker": event,
        "status": "active",
        "close_time": "2026-07-13T04:59:00Z",
        "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
    }
    return data


@pytest.fixture(scope="module")
def server() -> Iterator[KalshiRestServer]:
    with KalshiRestServer(
        _dataset(),
        cutoff=HistoricalCutoff(CUT, CUT, CUT),
        public_key=KEY.public_key(),
        key_id=KEY_ID,
        rate_limit=False,
    ) as srv:
        yield srv


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
scalar_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", "0", "-1", "1e309", "NaN", "true", "null", TICKER, "yes", "no", "buy", "sell"]
    ),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
)
order_bodies = st.dictionaries(st.sampled_from(ORDER_KEYS), json_values | scalar_text, max_size=10)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    order_bodies.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=100).map(str.encode),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes]:
    method, template = draw(st.sampled_from(ROUTES))
    param = draw(
        st.one_of(st.just(TICKER), st.text(alphabet=string.printable, min_size=1, max_size=30))
    )
    path = BASE_PATH + template.replace("{x}", quote(param, safe=""))
    query = draw(
        st.lists(st.tuples(st.sampled_from(QUERY_KEYS), scalar_text), max_size=6)
        | st.lists(st.tuples(st.text(max_size=10), st.text(max_size=20)), max_size=3)
    )
    raw_query = draw(st.one_of(st.just(urlencode(query)), st.text(max_size=40)))
    full = path + ("?" + raw_query if raw_query else "")
    signing = draw(st.sampled_from(["good", "none", "garbage", "wrong-method"]))
    headers: dict[str, str] = {}
    if signing == "good":
        headers = SIGNER.headers(method, "http://h" + urlsplit(full).path)
    elif signing == "wrong-method":
        headers = SIGNER.headers("GET" if method != "GET" else "POST", "http://h" + path)
    elif signing == "garbage":
        headers = {
            "KALSHI-ACCESS-KEY": draw(st.text(max_size=20)),
            "KALSHI-ACCESS-TIMESTAMP": draw(scalar_text),
            "KALSHI-ACCESS-SIGNATURE": draw(st.text(max_size=60)),
        }
    return method, full, headers, draw(bodies)


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_the_pipeline_answers_every_request_below_500_with_a_message(
    server: KalshiRestServer, request: tuple[str, str, dict[str, str], bytes]
) -> None:
    method, path, headers, body = request
    status, payload, _ = server.handle(method, path, headers, body)
    assert 200 <= status < 500, (status, payload)
    decoded: Any = json.loads(payload)
    if status >= 400:
        assert decoded, "an error answer says what was wrong"


def _raw(server: KalshiRestServer, data: bytes) -> bytes:
    """Send raw bytes on a fresh connection; everything the server answers until it closes
    or goes quiet."""
    host, port = "127.0.0.1", int(urlsplit(server.url).port or 0)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), f"no answer (connection dropped): {answer!r}"
    return int(answer.split(b" ", 2)[1])


def _post(length_headers: list[str], body: bytes = b"{}") -> bytes:
    lines = [f"POST {BASE_PATH}/portfolio/orders HTTP/1.1", "Host: x"]
    lines += [f"Content-Length: {v}" for v in length_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        (_post(["abc"]), 400),
        (_post(["-1"]), 400),
        (_post(["1e3"]), 400),
        (_post(["+2"]), 400),
        (_post(["0x10"]), 400),
        (_post([""]), 400),
        (_post(["2", "3"]), 400),
        (_post(["99999999999999999999"]), 413),
        (_post(["50"], b"{}"), 400),  # fewer bytes than announced, then the client closes
        (
            b"POST " + BASE_PATH.encode() + b"/portfolio/orders HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            411,
        ),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /\x00\xff HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET " + BASE_PATH.encode() + b"/markets HTTP/9.9\r\n\r\n", 505),
    ],
)
def test_malformed_framing_gets_an_answer(
    server: KalshiRestServer, framing: bytes, expected: int
) -> None:
    answer = _raw(server, framing)
    assert _status(answer) == expected, answer[:300]
    assert answer.split(b"\r\n\r\n", 1)[1], "the answer carries a message"
    with httpx.Client() as http:  # and the server still serves
        assert http.get(server.url + "/markets").status_code == 200


@settings(max_examples=60, deadline=None)
@given(
    value=st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\r\n"),
        max_size=25,
    )
)
def test_any_content_length_gets_an_answer_below_500(value: str) -> None:
    with KalshiRestServer(_dataset(), rate_limit=False) as srv:
        answer = _raw(srv, _post([value], b'{"ticker": "x"}'))
    status = _status(answer)
    assert status < 500 or status == 505, answer[:300]
