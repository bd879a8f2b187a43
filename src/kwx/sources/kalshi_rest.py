"""Kalshi Trade API v2 over plain httpx: our own client, because the SDKs lag the API.

Every request goes through `send_with_retries` with a builder that takes tokens from the
client-side bucket and signs afresh (a retry never replays a timestamp), so a backfill runs at
the account's allowed rate instead of bouncing off 429s. Public market data works without
keys; portfolio and order calls need a signer. Data older than Kalshi's historical cutoff lives
only under /historical/*, so market, trade and candle reads are routed by `GET
/historical/cutoff` and merged where a range spans it.

Series, events and markets come back as the raw wire dicts (the store keeps them as jsonb and
`kwx.ingest.normalize` reads them); prices, trades, candles, books and portfolio objects are
parsed into the Decimal dataclasses of `kalshi_models`.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx

from kwx.config import Settings
from kwx.sources.http import PayloadError, RetryPolicy, RetryStats, SourceError, send_with_retries
from kwx.sources.kalshi_auth import KalshiSigner
from kwx.sources.kalshi_models import (
    AccountLimits,
    Balance,
    CancelAck,
    Candle,
    Fill,
    HistoricalCutoff,
    MarketPosition,
    Order,
    OrderAck,
    OrderBook,
    OrderRequest,
    PriceRange,
    ShapeError,
    Trade,
    parse_account_limits,
    parse_balance,
    parse_cancel_ack,
    parse_candle,
    parse_cutoff,
    parse_error,
    parse_fill,
    parse_order,
    parse_order_ack,
    parse_orderbook,
    parse_position,
    parse_time,
    parse_trade,
)
from kwx.sources.ratelimit import TokenBucket

__all__ = [
    "BASIC_READ",
    "BASIC_WRITE",
    "DEFAULT_COST",
    "CredentialsMissingError",
    "KalshiApiError",
    "KalshiRest",
    "Tier",
]

log = logging.getLogger(__name__)

SOURCE = "kalshi"
DEFAULT_COST = 10
# Basic tier (refill tokens/s, capacity): 20 reads/s and 10 writes/s at the default cost.
BASIC_READ = (200.0, 400.0)
BASIC_WRITE = (100.0, 100.0)
# The client's bucket is kept a little smaller than the server's: our clock says when we sent
# a request, the server's when it arrived, and when one request is slower than the next the
# server sees them closer together than we did. The slack absorbs that much latency jitter.
JITTER_MARGIN_S = 0.01
MAX_BATCH_CANDLE_TICKERS = 100
CANDLE_PERIODS = (1, 60, 1440)
ORDERS_V2 = "/portfolio/events/orders"

Tier = Literal["auto", "live", "historical"]
TimeLike = int | float | datetime
T = TypeVar("T")


class KalshiApiError(SourceError):
    """Kalshi answered with an error status; `code` is its machine-readable error code."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        url: str,
        code: str | None,
        body: str | None,
    ) -> None:
        self.code = code
        super().__init__(
            SOURCE, f"{code}: {message}" if code else message, status=status, url=url, body=body
        )


class CredentialsMissingError(RuntimeError):
    """An authenticated endpoint was called on a client built without a signer."""


def _seconds(value: TimeLike | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(parse_time(value).timestamp())
    return int(value)


def _query(params: Mapping[str, object]) -> dict[str, str]:
    """Drop unset parameters and spell values the way Kalshi's query parser expects."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[key] = str(_seconds(value))
        elif isinstance(value, list | tuple | set | frozenset):
            if not value:
                continue
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ShapeError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _market(value: object) -> dict[str, Any]:
    market = _dict(value, "market")
    if not isinstance(market.get("ticker"), str):
        raise ShapeError("market: missing field ticker")
    return market


def _close_within(market: Mapping[str, Any], lo: int | None, hi: int | None) -> bool:
    """The /historical/markets endpoint has no close-time filters: apply them here."""
    if lo is None and hi is None:
        return True
    raw = market.get("close_time")
    if raw is None:
        return False
    close = parse_time(raw, field="close_time").timestamp()
    return (lo is None or close >= lo) and (hi is None or close <= hi)


class KalshiRest:
    """Synchronous Kalshi REST client.

    Reads may run from several threads (httpx.Client and the token buckets are thread-safe;
    `stats` counters are then approximate). Buckets default to the Basic tier; call
    `size_limits_from_account()` once keys are present to match the account's real tier.
    """

    def __init__(
        self,
        base_url: str,
        *,
        signer: KalshiSigner | None = None,
        client: httpx.Client | None = None,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        read_bucket: TokenBucket | None = None,
        write_bucket: TokenBucket | None = None,
        cost: int = DEFAULT_COST,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout_s)
        self.retry = retry or RetryPolicy()
        self.cost = cost
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.read_bucket = read_bucket or self._bucket(*BASIC_READ)
        self.write_bucket = write_bucket or self._bucket(*BASIC_WRITE)
        self.stats = RetryStats()
        self._cutoff: HistoricalCutoff | None = None
        # Which tier each market was found on, so candles go to the right endpoint.
        self._historical_markets: set[str] = set()
        self._live_markets: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> KalshiRest:
        """Signed when KALSHI_API_KEY_ID and KALSHI_PRIVATE_KEY_PATH are both set."""
        signer = None
        if settings.kalshi_api_key_id is not None and settings.kalshi_private_key_path:
            signer = KalshiSigner.from_pem_file(
                settings.kalshi_api_key_id.get_secret_value(), settings.kalshi_private_key_path
            )
        kwargs.setdefault("timeout_s", settings.http_timeout_s)
        return cls(settings.kalshi_rest_url, signer=signer, **kwargs)

    def __repr__(self) -> str:
        return f"KalshiRest({self.base_url!r}, signer={self.signer!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> KalshiRest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def rate_limited(self) -> int:
        """429 answers received so far (each one retried unless attempts ran out)."""
        return self.stats.statuses.get(429, 0)

    # ------------------------------------------------------------------------ plumbing

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        body: object = None,
        auth: bool = False,
        write: bool = False,
        cost: float | None = None,
        policy: RetryPolicy | None = None,
    ) -> httpx.Response:
        if auth and self.signer is None:
            raise CredentialsMissingError(
                f"{method} {path} needs Kalshi API credentials: set KALSHI_API_KEY_ID and "
                "KALSHI_PRIVATE_KEY_PATH (or pass a KalshiSigner)"
            )
        url = self.base_url + path
        query = _query(params or {})
        content = None if body is None else json.dumps(body).encode()
        bucket = self.write_bucket if write else self.read_bucket
        tokens = self.cost if cost is None else cost
        signer = self.signer

        def build() -> httpx.Request:
            # Tokens are taken per attempt: the server charges every attempt, retries included.
            bucket.acquire(tokens)
            headers = {"Accept": "application/json"}
            if content is not None:
                headers["Content-Type"] = "application/json"
            if signer is not None:
                headers.update(signer.headers(method, url))
            return self._client.build_request(
                method, url, params=query, content=content, headers=headers
            )

        return send_with_retries(
            self._client,
            build,
            source=SOURCE,
            policy=policy or self.retry,
            sleep=self._sleep,
            rng=self._rng,
            stats=self.stats,
        )

    @staticmethod
    def _where(response: httpx.Response) -> str:
        return str(response.request.url.copy_with(query=None))

    def _error(self, response: httpx.Response) -> KalshiApiError:
        code, message = parse_error(response.text)
        return KalshiApiError(
            message or response.reason_phrase,
            status=response.status_code,
            url=self._where(response),
            code=code,
            body=response.text[:2000],
        )

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        """The body of a 2xx answer as an object, or the typed failure."""
        if not response.is_success:
            raise self._error(response)
        try:
            data = response.json()
        except ValueError as exc:
            raise PayloadError(
                SOURCE,
                f"malformed JSON ({exc})",
                status=response.status_code,
                url=self._where(response),
                body=response.text,
            ) from None
        if not isinstance(data, dict):
            raise PayloadError(
                SOURCE,
                f"expected a JSON object, got {type(data).__name__}",
                status=response.status_code,
                url=self._where(response),
                body=response.text,
            )
        return data

    def _parsed(self, response: httpx.Response, parse: Callable[[], T]) -> T:
        """Run a parser over a 2xx body, turning any shape problem into a PayloadError."""
        try:
            return parse()
        except (ShapeError, KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise PayloadError(
                SOURCE,
                f"unexpected payload: {type(exc).__name__}: {exc}",
                status=response.status_code,
                url=self._where(response),
                body=response.text,
            ) from exc

    def _get(
        self,
        path: str,
        params: Mapping[str, object] | None = None,
        *,
        auth: bool = False,
        cost: float | None = None,
    ) -> tuple[dict[str, Any], httpx.Response]:
        response = self._send("GET", path, params=params, auth=auth, cost=cost)
        return self._json(response), response

    def _one(self, path: str, key: str, parse: Callable[[object], T], **kw: Any) -> T:
        data, response = self._get(path, **kw)
        return self._parsed(response, lambda: parse(data[key]))

    def _paginate(
        self,
        path: str,
        key: str,
        params: Mapping[str, object],
        *,
        limit: int,
        parse: Callable[[Any], T],
        auth: bool = False,
    ) -> Iterator[T]:
        """Follow `cursor` until it comes back empty or null; a repeated cursor is a loop."""
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            query = {**params, "limit": limit, "cursor": cursor}
            data, response = self._get(path, query, auth=auth)

            def page(data: dict[str, Any] = data) -> tuple[list[T], str | None]:
                raw = data.get(key)
                if raw is None:
                    raw = []
                if not isinstance(raw, list):
                    raise ShapeError(f"{key}: expected a list, got {type(raw).__name__}")
                nxt = data.get("cursor")
                if nxt is not None and not isinstance(nxt, str):
                    raise ShapeError(f"cursor: expected a string, got {nxt!r}")
                return [parse(item) for item in raw], nxt

            items, cursor = self._parsed(response, page)
            yield from items
            if not cursor:
                return
            if cursor in seen:
                raise SourceError(
                    SOURCE,
                    f"the server repeated a pagination cursor ({cursor[:40]!r}); "
                    "stopping instead of looping",
                    url=self._where(response),
                )
            seen.add(cursor)

    # ------------------------------------------------------------------------ routing

    def historical_cutoff(self, *, refresh: bool = False) -> HistoricalCutoff:
        """Kalshi's live/historical split, fetched once per client unless refreshed."""
        if self._cutoff is None or refresh:
            data, response = self._get("/historical/cutoff")
            self._cutoff = self._parsed(response, lambda: parse_cutoff(data))
        return self._cutoff

    def _note_market(self, market: Mapping[str, Any], historical: bool) -> None:
        ticker = str(market["ticker"])
        if not historical and self._cutoff is not None and market.get("settlement_ts"):
            try:
                settled = parse_time(market["settlement_ts"], field="settlement_ts")
            except ShapeError:
                settled = None
            historical = settled is not None and settled < self._cutoff.market_settled_ts
        (self._historical_markets if historical else self._live_markets).add(ticker)

    def _market_is_historical(self, ticker: str) -> bool:
        if ticker in self._historical_markets:
            return True
        if ticker in self._live_markets:
            return False
        self.historical_cutoff()
        self.get_market(ticker)  # records the tier it was found on
        return ticker in self._historical_markets

    # ------------------------------------------------------------------------ market data

    def list_series(
        self, category: str | None = None, *, tags: str | None = None
    ) -> list[dict[str, Any]]:
        data, response = self._get("/series", {"category": category, "tags": tags})

        def parse() -> list[dict[str, Any]]:
            raw = data.get("series") or []
            if not isinstance(raw, list):
                raise ShapeError("series: expected a list")
            return [_dict(s, "series") for s in raw]

        return self._parsed(response, parse)

    def get_series(self, series_ticker: str) -> dict[str, Any]:
        return self._one(
            f"/series/{quote(series_ticker, safe='')}", "series", lambda v: _dict(v, "series")
        )

    def iter_events(
        self,
        *,
        series_ticker: str | None = None,
        status: str | None = None,
        with_nested_markets: bool = False,
        min_close_ts: TimeLike | None = None,
        limit: int = 200,
    ) -> Iterator[dict[str, Any]]:
        """Events (old ones too); nested markets omit those settled before the cutoff."""
        params = {
            "series_ticker": series_ticker,
            "status": status,
            "with_nested_markets": with_nested_markets or None,
            "min_close_ts": _seconds(min_close_ts),
        }
        return self._paginate(
            "/events", "events", params, limit=min(limit, 200), parse=lambda v: _dict(v, "event")
        )

    def get_event(self, event_ticker: str, *, with_nested_markets: bool = True) -> dict[str, Any]:
        """The event, its markets under `event["markets"]` (the top-level copy is deprecated)."""
        data, response = self._get(
            f"/events/{quote(event_ticker, safe='')}",
            {"with_nested_markets": with_nested_markets},
        )

        def parse() -> dict[str, Any]:
            event = dict(_dict(data["event"], "event"))
            if with_nested_markets and not event.get("markets") and data.get("markets"):
                event["markets"] = data["markets"]
            for market in event.get("markets") or []:
                _market(market)
            return event

        return self._parsed(response, parse)

    def iter_markets(
        self,
        *,
        series_ticker: str | None = None,
        event_ticker: str | None = None,
        status: str | None = None,
        tickers: Sequence[str] | None = None,
        min_close_ts: TimeLike | None = None,
        max_close_ts: TimeLike | None = None,
        tier: Tier = "auto",
        limit: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Live markets, then (when the query can reach them) those only on /historical/markets.

        Historical markets are all settled, so a status other than "settled", or a
        `min_close_ts` after the cutoff, skips that tier. A ticker on both tiers (mid-move) is
        yielded once, from the live tier.
        """
        lo, hi = _seconds(min_close_ts), _seconds(max_close_ts)
        seen: set[str] = set()
        if tier in ("auto", "live"):
            params = {
                "series_ticker": series_ticker,
                "event_ticker": event_ticker,
                "status": status,
                "tickers": list(tickers) if tickers else None,
                "min_close_ts": lo,
                "max_close_ts": hi,
            }
            for market in self._paginate(
                "/markets", "markets", params, limit=min(limit, 1000), parse=_market
            ):
                seen.add(market["ticker"])
                self._note_market(market, historical=False)
                yield market
        if tier == "live":
            return
        if tier == "auto":
            if status not in (None, "settled"):
                return
            cutoff = self.historical_cutoff().market_settled_ts.timestamp()
            if lo is not None and lo >= cutoff:
                return
        hparams = {
            "series_ticker": series_ticker,
            "event_ticker": event_ticker,
            "tickers": list(tickers) if tickers else None,
        }
        for market in self._paginate(
            "/historical/markets", "markets", hparams, limit=min(limit, 1000), parse=_market
        ):
            if market["ticker"] in seen or not _close_within(market, lo, hi):
                continue
            self._note_market(market, historical=True)
            yield market

    def get_market(self, ticker: str) -> dict[str, Any]:
        """One market; a 404 on the live tier falls back to /historical/markets/{ticker}."""
        path = f"/markets/{quote(ticker, safe='')}"
        response = self._send("GET", path)
        historical = False
        if response.status_code == 404:
            response = self._send("GET", "/historical" + path)
            historical = True
        data = self._json(response)
        market = self._parsed(response, lambda: _market(data["market"]))
        self._note_market(market, historical=historical)
        return market

    def get_orderbook(self, ticker: str, depth: int | None = None) -> OrderBook:
        data, response = self._get(f"/markets/{quote(ticker, safe='')}/orderbook", {"depth": depth})
        return self._parsed(response, lambda: parse_orderbook(data, ticker))

    def get_candlesticks(
        self,
        series_ticker: str,
        ticker: str,
        start_ts: TimeLike,
        end_ts: TimeLike,
        period_interval: int = 1,
        *,
        tier: Tier = "auto",
    ) -> list[Candle]:
        """Candles whose end falls in [start_ts, end_ts], from the tier the market lives on.

        Candles are emitted on change only: minutes without one are not missing data.
        """
        if period_interval not in CANDLE_PERIODS:
            raise ValueError(f"period_interval must be one of {CANDLE_PERIODS}")
        params = {
            "start_ts": _seconds(start_ts),
            "end_ts": _seconds(end_ts),
            "period_interval": period_interval,
        }
        historical = tier == "historical" or (tier == "auto" and self._market_is_historical(ticker))
        q = quote(ticker, safe="")
        if not historical:
            response = self._send(
                "GET",
                f"/series/{quote(series_ticker, safe='')}/markets/{q}/candlesticks",
                params=params,
            )
            if response.status_code != 404 or tier == "live":
                return self._candles(response, ticker)
            self._historical_markets.add(ticker)
        response = self._send("GET", f"/historical/markets/{q}/candlesticks", params=params)
        return self._candles(response, ticker)

    def _candles(self, response: httpx.Response, ticker: str) -> list[Candle]:
        data = self._json(response)

        def parse() -> list[Candle]:
            raw = data.get("candlesticks") or []
            if not isinstance(raw, list):
                raise ShapeError("candlesticks: expected a list")
            name = str(data.get("ticker") or ticker)
            return [parse_candle(_dict(c, "candlestick"), name) for c in raw]

        return self._parsed(response, parse)

    def batch_candlesticks(
        self,
        tickers: Sequence[str],
        start_ts: TimeLike,
        end_ts: TimeLike,
        period_interval: int = 1,
    ) -> dict[str, list[Candle]]:
        """Candles for up to 100 markets; every requested ticker is a key (maybe empty).

        The batch is billed per market, and a batch larger than the read bucket would be
        rejected whole, so it is split into requests that fit. Markets known to be on the
        historical tier are fetched from there one by one (the batch endpoint is live only).
        """
        if len(tickers) > MAX_BATCH_CANDLE_TICKERS:
            raise ValueError(f"at most {MAX_BATCH_CANDLE_TICKERS} tickers per batch")
        if period_interval not in CANDLE_PERIODS:
            raise ValueError(f"period_interval must be one of {CANDLE_PERIODS}")
        out: dict[str, list[Candle]] = {t: [] for t in tickers}
        live = [t for t in out if t not in self._historical_markets]
        for ticker in out:
            if ticker in self._historical_markets:
                out[ticker] = self.get_candlesticks(
                    "", ticker, start_ts, end_ts, period_interval, tier="historical"
                )
        per_request = max(1, int(self.read_bucket.capacity // self.cost))
        for start in range(0, len(live), per_request):
            chunk = live[start : start + per_request]
            data, response = self._get(
                "/markets/candlesticks",
                {
                    "market_tickers": chunk,
                    "start_ts": _seconds(start_ts),
                    "end_ts": _seconds(end_ts),
                    "period_interval": period_interval,
                },
                cost=self.cost * len(chunk),
            )

            def parse(data: dict[str, Any] = data) -> dict[str, list[Candle]]:
                got: dict[str, list[Candle]] = {}
                for item in data.get("markets") or []:
                    item = _dict(item, "markets item")
                    name = str(item.get("market_ticker") or item["ticker"])
                    got[name] = [
                        parse_candle(_dict(c, "candlestick"), name)
                        for c in item.get("candlesticks") or []
                    ]
                return got

            out.update(self._parsed(response, parse))
        return out

    def iter_trades(
        self,
        ticker: str | None = None,
        *,
        min_ts: TimeLike | None = None,
        max_ts: TimeLike | None = None,
        tier: Tier = "auto",
        limit: int = 1000,
    ) -> Iterator[Trade]:
        """Public trades in [min_ts, max_ts]; a range spanning the trades cutoff reads both
        tiers (historical first) and yields each trade_id once. Not globally time-sorted."""
        lo, hi = _seconds(min_ts), _seconds(max_ts)
        params = {"ticker": ticker, "min_ts": lo, "max_ts": hi}
        want_hist = tier == "historical"
        want_live = tier == "live"
        if tier == "auto":
            cutoff = self.historical_cutoff().trades_created_ts.timestamp()
            want_hist = lo is None or lo < cutoff
            want_live = hi is None or hi >= cutoff
        seen: set[str] | None = set() if want_hist and want_live else None
        limit = min(limit, 1000)
        if want_hist:
            for trade in self._paginate(
                "/historical/trades", "trades", params, limit=limit, parse=parse_trade
            ):
                if seen is not None:
                    seen.add(trade.trade_id)
                yield trade
        if want_live:
            for trade in self._paginate(
                "/markets/trades", "trades", params, limit=limit, parse=parse_trade
            ):
                if seen is not None and trade.trade_id in seen:
                    continue
                yield trade

    def exchange_status(self) -> dict[str, Any]:
        data, _ = self._get("/exchange/status")
        return data

    def exchange_schedule(self) -> dict[str, Any]:
        data, _ = self._get("/exchange/schedule")
        return data

    # ------------------------------------------------------------------------ account

    def account_limits(self) -> AccountLimits:
        data, response = self._get("/account/limits", auth=True)
        return self._parsed(response, lambda: parse_account_limits(data))

    def size_limits_from_account(self) -> AccountLimits:
        """Resize both client buckets to the account's tier, keeping what was already spent.

        A fresh bucket would start full while the server's still remembers our recent
        requests; the tokens owed are drawn from the new bucket so the two stay in step.
        """
        limits = self.account_limits()
        self.read_bucket = self._resized(self.read_bucket, limits.read_rate, limits.read_capacity)
        self.write_bucket = self._resized(
            self.write_bucket, limits.write_rate, limits.write_capacity
        )
        log.info(
            "kalshi rate limits (%s): read %g/s cap %g, write %g/s cap %g",
            limits.usage_tier,
            limits.read_rate,
            limits.read_capacity,
            limits.write_rate,
            limits.write_capacity,
        )
        return limits

    def _bucket(self, rate: float, capacity: float) -> TokenBucket:
        """A client twin of a server bucket, `JITTER_MARGIN_S` (at least one request) short."""
        margin = min(capacity / 2, max(float(self.cost), rate * JITTER_MARGIN_S))
        return TokenBucket(rate, capacity - margin, sleep=self._sleep)

    def _resized(self, old: TokenBucket, rate: float, capacity: float) -> TokenBucket:
        new = self._bucket(rate, capacity)
        owed = min(new.capacity, old.capacity - old.tokens)
        if owed > 0:
            new.acquire(owed)
        return new

    # ------------------------------------------------------------------------ portfolio

    def balance(self) -> Balance:
        data, response = self._get("/portfolio/balance", auth=True)
        return self._parsed(response, lambda: parse_balance(data))

    def iter_positions(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        settlement_status: str | None = None,
        count_filter: str | None = None,
        limit: int = 200,
    ) -> Iterator[MarketPosition]:
        params = {
            "ticker": ticker,
            "event_ticker": event_ticker,
            "settlement_status": settlement_status,
            "count_filter": count_filter,
        }
        return self._paginate(
            "/portfolio/positions",
            "market_positions",
            params,
            limit=limit,
            parse=lambda v: parse_position(_dict(v, "position")),
            auth=True,
        )

    def iter_fills(
        self,
        *,
        ticker: str | None = None,
        order_id: str | None = None,
        min_ts: TimeLike | None = None,
        max_ts: TimeLike | None = None,
        limit: int = 200,
    ) -> Iterator[Fill]:
        params = {
            "ticker": ticker,
            "order_id": order_id,
            "min_ts": _seconds(min_ts),
            "max_ts": _seconds(max_ts),
        }
        return self._paginate(
            "/portfolio/fills",
            "fills",
            params,
            limit=limit,
            parse=lambda v: parse_fill(_dict(v, "fill")),
            auth=True,
        )

    def iter_orders(
        self,
        *,
        ticker: str | None = None,
        event_ticker: str | None = None,
        status: str | None = None,
        min_ts: TimeLike | None = None,
        max_ts: TimeLike | None = None,
        limit: int = 200,
    ) -> Iterator[Order]:
        params = {
            "ticker": ticker,
            "event_ticker": event_ticker,
            "status": status,
            "min_ts": _seconds(min_ts),
            "max_ts": _seconds(max_ts),
        }
        return self._paginate(
            "/portfolio/orders",
            "orders",
            params,
            limit=limit,
            parse=lambda v: parse_order(_dict(v, "order")),
            auth=True,
        )

    def get_order(self, order_id: str) -> Order:
        return self._one(
            f"/portfolio/orders/{quote(order_id, safe='')}",
            "order",
            lambda v: parse_order(_dict(v, "order")),
            auth=True,
        )

    def find_order_by_client_id(
        self, client_order_id: str, *, ticker: str | None = None, min_ts: TimeLike | None = None
    ) -> Order | None:
        """The order carrying our idempotency key, if the exchange has it (reconcile step)."""
        for order in self.iter_orders(ticker=ticker, min_ts=min_ts):
            if order.client_order_id == client_order_id:
                return order
        return None

    def create_order(
        self, order: OrderRequest, *, price_ranges: Sequence[PriceRange] | object = None
    ) -> OrderAck:
        """Place a V2 order without ever placing it twice.

        A 429 was refused before matching, so it is simply resent. A timeout or 5xx leaves the
        outcome unknown: the order is looked up by its client_order_id first and only resent,
        with the same id, when the exchange does not have it.
        """
        if price_ranges is not None:
            order.check_ticks(price_ranges)
        body = order.to_json()
        once = replace(self.retry, max_attempts=1)
        unknown: Exception | None = None
        for attempt in range(self.retry.max_attempts):
            if attempt:
                self._sleep(self.retry.delay(attempt - 1, self._rng))
            try:
                response = self._send(
                    "POST", ORDERS_V2, body=body, auth=True, write=True, policy=once
                )
            except SourceError as exc:  # transport failure: sent or not, we cannot tell
                unknown = exc
            else:
                if response.is_success:
                    return self._parsed(
                        response, functools.partial(parse_order_ack, self._json(response))
                    )
                if response.status_code == 429:  # refused before matching: resend as is
                    unknown = self._error(response)
                    continue
                if response.status_code == 409:
                    found = self._reconcile(order)
                    if found is not None:
                        return OrderAck.from_order(found)
                    raise self._error(response)
                if response.status_code < 500:
                    raise self._error(response)
                unknown = self._error(response)
            log.warning(
                "create_order %s: outcome unknown (%s); reconciling by client_order_id",
                order.client_order_id,
                type(unknown).__name__,
            )
            try:
                found = self._reconcile(order)
            except SourceError as exc:
                log.warning(
                    "create_order %s: reconcile failed (%s); resending with the same id",
                    order.client_order_id,
                    type(exc).__name__,
                )
                continue
            if found is not None:
                log.info("create_order %s: found on the exchange", order.client_order_id)
                return OrderAck.from_order(found)
        raise SourceError(
            SOURCE,
            f"create_order {order.client_order_id}: gave up after "
            f"{self.retry.max_attempts} attempts; last: {unknown}",
        )

    def _reconcile(self, order: OrderRequest) -> Order | None:
        return self.find_order_by_client_id(order.client_order_id, ticker=order.ticker)

    def cancel_order(self, order_id: str, market_ticker: str | None = None) -> CancelAck:
        response = self._send(
            "DELETE",
            f"{ORDERS_V2}/{quote(order_id, safe='')}",
            params={"market_ticker": market_ticker},
            auth=True,
            write=True,
        )
        data = self._json(response)
        return self._parsed(response, lambda: parse_cancel_ack(data))

    def amend_order(
        self,
        order_id: str,
        *,
        ticker: str,
        side: Literal["bid", "ask"],
        price: Decimal,
        count: Decimal,
        client_order_id: str | None = None,
        updated_client_order_id: str | None = None,
        expiration_time: int | None = None,
    ) -> OrderAck:
        """`count` is the new total (filled + desired remaining), so a resend is harmless."""
        probe = OrderRequest(ticker, side, count, price, "good_till_canceled")
        body: dict[str, Any] = {
            "ticker": ticker,
            "side": side,
            "price": probe.to_json()["price"],
            "count": probe.to_json()["count"],
        }
        if client_order_id is not None:
            body["client_order_id"] = client_order_id
        if updated_client_order_id is not None:
            body["updated_client_order_id"] = updated_client_order_id
        if expiration_time is not None:
            body["expiration_time"] = expiration_time
        response = self._send(
            "POST",
            f"{ORDERS_V2}/{quote(order_id, safe='')}/amend",
            body=body,
            auth=True,
            write=True,
        )
        data = self._json(response)
        return self._parsed(response, lambda: parse_order_ack(data))

    def decrease_order(
        self,
        order_id: str,
        *,
        reduce_by: Decimal | None = None,
        reduce_to: Decimal | None = None,
    ) -> CancelAck:
        """Exactly one of reduce_by / reduce_to. `reduce_by` is not idempotent, so it is
        never resent after a timeout or 5xx (only after a 429, which did nothing)."""
        if (reduce_by is None) == (reduce_to is None):
            raise ValueError("pass exactly one of reduce_by and reduce_to")
        amount = reduce_by if reduce_by is not None else reduce_to
        assert amount is not None
        body = {"reduce_by" if reduce_by is not None else "reduce_to": format(amount, "f")}
        policy = self.retry
        if reduce_by is not None:
            policy = replace(self.retry, retry_statuses=frozenset({429}), max_attempts=1)
        path = f"{ORDERS_V2}/{quote(order_id, safe='')}/decrease"
        for attempt in range(self.retry.max_attempts):
            if attempt:
                self._sleep(self.retry.delay(attempt - 1, self._rng))
            response = self._send("POST", path, body=body, auth=True, write=True, policy=policy)
            if response.status_code != 429 or reduce_by is None:
                break
        data = self._json(response)
        return self._parsed(response, lambda: parse_cancel_ack(data))

    def cancel_all(self, subaccount: int | None = None) -> dict[str, Any]:
        """Kill switch: cancel every resting order (orders placed in the next minute may be
        cancelled too, per Kalshi)."""
        response = self._send(
            "DELETE", ORDERS_V2, params={"subaccount": subaccount}, auth=True, write=True
        )
        return self._json(response)
